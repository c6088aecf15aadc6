//! A minimal JSON reader, enough to check smb3bench's own output in tests and scripts without a
//! serde dependency. Numbers are f64; no surrogate-pair handling in `\u` escapes.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Value>),
    Obj(BTreeMap<String, Value>),
}

impl Value {
    /// Follow a path like `jobs.0.read.bw_bytes`.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut v = self;
        for part in path.split('.') {
            v = match v {
                Value::Obj(m) => m.get(part)?,
                Value::Arr(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v)
    }

    pub fn num(&self, path: &str) -> Option<f64> {
        match self.get(path)? {
            Value::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn str(&self, path: &str) -> Option<&str> {
        match self.get(path)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!("trailing data at {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at {}", c as char, self.i))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > 64 {
            return Err("nested too deeply".into());
        }
        self.ws();
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Value::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    m.insert(k, self.value(depth + 1)?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Value::Obj(m));
                        }
                        _ => return Err(format!("bad object at {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Value::Arr(a));
                }
                loop {
                    a.push(self.value(depth + 1)?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Arr(a));
                        }
                        _ => return Err(format!("bad array at {}", self.i)),
                    }
                }
            }
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') if self.b[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            Some(b'f') if self.b[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            Some(b'n') if self.b[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Value::Null)
            }
            _ => {
                let start = self.i;
                while self.i < self.b.len() && b"+-.eE0123456789".contains(&self.b[self.i]) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.b[start..self.i])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .map(Value::Num)
                    .ok_or_else(|| format!("bad value at {start}"))
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.b.get(self.i) != Some(&b'"') {
            return Err(format!("expected string at {}", self.i));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.b.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.b.get(self.i).ok_or("bad escape")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4).ok_or("bad \\u")?;
                            self.i += 4;
                            let code = u32::from_str_radix(
                                std::str::from_utf8(hex).map_err(|_| "bad \\u")?,
                                16,
                            )
                            .map_err(|_| "bad \\u")?;
                            let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| "invalid UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_documents() {
        let v = parse(r#"{"jobs": [{"read": {"bw_bytes": 12, "p": {"99.000000": 5}}, "error_name": "a\"b\u0041"}], "t": true, "n": null}"#).unwrap();
        assert_eq!(v.num("jobs.0.read.bw_bytes"), Some(12.0));
        assert_eq!(v.num("jobs.0.read.p.99.000000"), None); // dots split the path
        assert_eq!(v.str("jobs.0.error_name"), Some("a\"bA"));
        assert_eq!(v.get("t"), Some(&Value::Bool(true)));
        assert!(parse("{").is_err());
        assert!(parse("[1,]").is_err());
        assert!(parse("{} x").is_err());
    }

    #[test]
    fn report_output_is_valid_json() {
        use crate::job::JobSpec;
        use crate::run::{ChannelStats, JobResult};
        let mut c = ChannelStats::default();
        c.read.hist.record(1000);
        c.read.bytes = 4096;
        let r = JobResult {
            spec: JobSpec::default(),
            channels_used: 1,
            notes: vec!["a \"note\"".into()],
            elapsed: std::time::Duration::from_secs(1),
            channels: vec![c],
            error: None,
            verified_bytes: 8192,
            verified_cross_channel_bytes: 4096,
        };
        let v = parse(&crate::report::json(&[r], "//h/s")).unwrap();
        assert_eq!(v.num("jobs.0.read.bw_bytes"), Some(4096.0));
        assert_eq!(v.num("jobs.0.read.iops"), Some(1.0));
        assert_eq!(v.num("jobs.0.channels"), Some(1.0));
        assert_eq!(v.num("jobs.0.error"), Some(0.0));
        let Some(Value::Obj(p)) = v.get("jobs.0.read.clat_ns.percentile") else {
            panic!("no percentiles");
        };
        assert_eq!(p.get("99.000000"), Some(&Value::Num(1000.0)));
        assert_eq!(v.str("jobs.0.notes.0"), Some("a \"note\""));
        assert_eq!(v.num("jobs.0.verified_bytes"), Some(8192.0));
        assert_eq!(v.num("jobs.0.verified_cross_channel_bytes"), Some(4096.0));
        assert_eq!(v.num("jobs.0.channels_lost"), Some(0.0));
        assert_eq!(v.get("jobs.0.channel_stats.0.lost"), Some(&Value::Null));
    }
}

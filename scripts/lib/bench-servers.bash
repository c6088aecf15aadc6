# shellcheck shell=bash
# Sourced by scripts/bench-multichannel and scripts/bench-break-failover: start and stop smb3d or Samba's
# smbd (scripts/samba-reference, multichannel on) on one share directory, on loopback or inside the server
# namespace of scripts/netns-topology, and run commands on the client side.
#
# The caller sets SCRIPT_DIR, work_dir (a private directory), smb3d_bin, TEST_USER and TEST_PASS, and
# defines nothing else with these names. bench_netns_up SUFFIX switches to the namespace pair (and
# bench_cleanup removes it); then servers listen on both NICs' IPv4 addresses, port 445.
# After bench_start_server KIND: $bench_port, $bench_hosts (listening addresses), $bench_share.

bench_port=""
bench_hosts=(127.0.0.1)
bench_share=""
bench_server_exec=()
bench_client_exec=()
bench_netns_suffix=""
bench_smb3d_pid=""
bench_samba_dir=""

bench_port_accepts() {
    "${bench_client_exec[@]}" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "${bench_hosts[0]}" "$1" 2>/dev/null
}

bench_pick_port() {
    if [[ -n "$bench_netns_suffix" ]]; then
        echo 445 # the namespace is private
        return
    fi
    local candidate
    for _ in $(seq 200); do
        candidate=$((20000 + RANDOM % 40000))
        bench_port_accepts "$candidate" || { echo "$candidate"; return 0; }
    done
    return 1
}

# Build the namespace pair SUFFIX and run servers and clients inside it from now on.
bench_netns_up() {
    bench_netns_suffix="$1"
    "$SCRIPT_DIR/netns-topology" up "$bench_netns_suffix" || return 1
    eval "$("$SCRIPT_DIR/netns-topology" names "$bench_netns_suffix")"
    read -r -a bench_hosts <<<"$SMB3D_NETNS_SERVER_V4"
    bench_server_exec=(ip netns exec "$SMB3D_NETNS_SERVER")
    bench_client_exec=(ip netns exec "$SMB3D_NETNS_CLIENT")
}

bench_netns_down() {
    if [[ -n "$bench_netns_suffix" ]]; then
        "$SCRIPT_DIR/netns-topology" down "$bench_netns_suffix" || true
    fi
    bench_netns_suffix=""
    bench_hosts=(127.0.0.1)
    bench_server_exec=()
    bench_client_exec=()
}

# bench_client CMD...: run a command on the client side (inside the client namespace if there is one).
bench_client() {
    "${bench_client_exec[@]}" "$@"
}

# bench_start_server smb3d|samba [EXTRA smb3d ARGS...]: a fresh share directory, the server on it.
bench_start_server() {
    local kind="$1"
    shift
    bench_share="$work_dir/share-$kind-$RANDOM"
    mkdir -p "$bench_share"
    chmod 0777 "$bench_share"
    bench_port="$(bench_pick_port)" || return 1
    if [[ "$kind" == samba ]]; then
        bench_samba_dir="$work_dir/samba"
        SAMBA_REFERENCE_ADDRESSES="${bench_hosts[*]}" "${bench_server_exec[@]}" "$SCRIPT_DIR/samba-reference" \
            start "$bench_samba_dir" "$bench_port" "$bench_share" "$TEST_USER" "$TEST_PASS" >&2
        return
    fi
    [[ -x "$smb3d_bin" ]] || { echo "$smb3d_bin not found (cargo build --release -p smb3d)" >&2; return 1; }
    rm -f "$work_dir/passdb"
    "$smb3d_bin" user add --passdb "$work_dir/passdb" "$TEST_USER" <<<"$TEST_PASS" >&2 || return 1
    local -a listen=()
    local host
    for host in "${bench_hosts[@]}"; do
        listen+=(--listen "$host:$bench_port")
    done
    # setsid, then `ip netns exec` (which execs): the pid is smb3d's, leader of its own group.
    setsid "${bench_server_exec[@]}" "$smb3d_bin" serve --passdb "$work_dir/passdb" \
        --share "share=$bench_share" "${listen[@]}" "$@" </dev/null >"$work_dir/smb3d.log" 2>&1 &
    bench_smb3d_pid=$!
    local waited_ds=0
    until bench_port_accepts "$bench_port"; do
        if ! kill -0 "$bench_smb3d_pid" 2>/dev/null || ((waited_ds >= 300)); then
            echo "smb3d did not start; log:" >&2
            tail -n 20 "$work_dir/smb3d.log" >&2 || true
            bench_stop_server
            return 1
        fi
        sleep 0.1
        waited_ds=$((waited_ds + 1))
    done
}

bench_stop_server() {
    if [[ -n "$bench_samba_dir" ]]; then
        "$SCRIPT_DIR/samba-reference" stop "$bench_samba_dir" >/dev/null 2>&1 || true
        rm -rf "$bench_samba_dir"
        bench_samba_dir=""
    fi
    if [[ -n "$bench_smb3d_pid" ]]; then
        kill -TERM -- "-$bench_smb3d_pid" 2>/dev/null || true
        local waited_ds=0
        while kill -0 "$bench_smb3d_pid" 2>/dev/null && ((waited_ds < 100)); do
            sleep 0.1
            waited_ds=$((waited_ds + 1))
        done
        kill -KILL -- "-$bench_smb3d_pid" 2>/dev/null || true
        wait "$bench_smb3d_pid" 2>/dev/null || true
        bench_smb3d_pid=""
    fi
    if [[ -n "$bench_share" ]]; then
        rm -rf "$bench_share"
        bench_share=""
    fi
}

# For an EXIT trap: servers, namespaces, the work directory.
bench_cleanup() {
    bench_stop_server
    bench_netns_down
    rm -rf "$work_dir"
}

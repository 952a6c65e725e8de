#!/bin/sh
# Checks the FreeBSD port and the OpenBSD rc.d script of cross/bsd/ on Linux, in a few
# seconds, with no BSD at hand:
#
#   tests/pkg/bsd_test.sh
#
# * the port: its version is Cargo.toml's; the files its Makefile installs are exactly those
#   pkg-plist lists, from sources that exist in the tree; the rc script and the message it
#   names are there; the samples' control socket moves to /var/run and they still pass
#   mlvpn check-config (when a built mlvpn is at hand: $MLVPN_BIN, target/release/mlvpn or
#   the x86_64 cross build; nothing is built here);
# * the FreeBSD rc script, run against a stub of rc.subr: the daemon(8) command line it
#   starts (parsed with daemon's options), check-config before start, restart and reload,
#   SIGHUP to mlvpn itself on reload, SIGTERM to the supervisor on stop;
# * the OpenBSD rc.d script, run against a stub of rc.subr: daemon, daemon_flags, rc_bg,
#   check-config in rc_pre with the flags rcctl set, the default reload (pkill -HUP);
# * the BSD hook script, with ifconfig, route and uname stubbed: the commands it runs;
# * shellcheck -s sh on every script of cross/bsd/ and on this test.
#
# ${VAR} in single quotes here are make's, matched as they are written in the Makefile.
# shellcheck disable=SC2016
set -eu
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091 # checked on its own
. tests/pkg/lib.sh

root=$PWD
port=cross/bsd/freebsd/net/mlvpn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The value of variable $1 in the port's Makefile (one line, "NAME=<tabs>value").
port_var() {
    sed -n "s/^$1=[[:space:]]*//p" "$port/Makefile" | head -n 1
}

echo "== FreeBSD port: Makefile and pkg-plist"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
check_eq "PORTVERSION is Cargo.toml's version" "$version" "$(port_var PORTVERSION)"
check_eq "PORTNAME" mlvpn "$(port_var PORTNAME)"
check_eq "CATEGORIES" net "$(port_var CATEGORIES)"
check_eq "USES" cargo "$(port_var USES)"
check_eq "LICENSE (Cargo.toml says BSD-2-Clause)" BSD2CLAUSE "$(port_var LICENSE)"
check "Cargo.toml's license is BSD-2-Clause" grep -q '^license = "BSD-2-Clause"$' Cargo.toml
check_eq "LICENSE_FILE is the tree's LICENSE" '${WRKSRC}/LICENSE' "$(port_var LICENSE_FILE)"
check "LICENSE exists" test -f LICENSE
check "a COMMENT" test -n "$(port_var COMMENT)"
check "a WWW" test -n "$(port_var WWW)"
rc_subr=$(port_var USE_RC_SUBR)
check_eq "USE_RC_SUBR" mlvpn "$rc_subr"
check "the rc script files/$rc_subr.in exists" test -f "$port/files/$rc_subr.in"
for f in $(port_var SUB_FILES); do
    check "SUB_FILES: files/$f.in exists" test -f "$port/files/$f.in"
done
check "pkg-descr exists" test -s "$port/pkg-descr"
check "pkg-descr: lines of at most 80 characters" not grep -q '.\{81\}' "$port/pkg-descr"
check "distinfo is not shipped (make makesum writes it)" not test -e "$port/distinfo"

# The Makefile's recipe lines, continuation lines joined.
sed -e ':a' -e '/\\$/{N;s/\\\n[[:space:]]*/ /;ba' -e '}' "$port/Makefile" | grep '^	' >"$tmp/recipes"
# What it installs: the last word of each recipe line that writes into ${STAGEDIR} (not the
# directories it makes), in pkg-plist's terms.
grep -F '${STAGEDIR}' "$tmp/recipes" | grep -v -F '${MKDIR}' | awk '{ print $NF }' |
    sed -e 's|^${STAGEDIR}${PREFIX}/||' -e 's|^${STAGEDIR}${ETCDIR}|%%ETCDIR%%|' \
        -e 's|^${STAGEDIR}${EXAMPLESDIR}|%%EXAMPLESDIR%%|' | sort >"$tmp/installed"
# What pkg-plist lists: files, keywords and option prefixes taken away.
grep -v '^@dir' "$port/pkg-plist" |
    sed -e 's/^@sample([^)]*) //' -e 's/^@sample //' -e 's/^%%PORTEXAMPLES%%//' | sort >"$tmp/listed"
check "the Makefile installs something" test -s "$tmp/installed"
check_same "pkg-plist lists exactly what the Makefile installs" "$tmp/listed" "$tmp/installed"
check "pkg-plist: no etc/rc.d/mlvpn (USE_RC_SUBR adds it)" not grep -q 'rc\.d' "$port/pkg-plist"
check "pkg-plist: the samples are @sample lines" \
    test "$(grep -c '^@sample([^)]*) %%ETCDIR%%/[a-z]*\.conf\.sample$' "$port/pkg-plist")" = 2
check "pkg-plist: the hook depends on the EXAMPLES option" \
    grep -q '^%%PORTEXAMPLES%%%%EXAMPLESDIR%%/' "$port/pkg-plist"
check "the Makefile defines the EXAMPLES option it installs by" \
    grep -q '^OPTIONS_DEFINE=.*EXAMPLES' "$port/Makefile"
# Every ${WRKSRC} file it installs from is in the tree (the distfile is a git archive of it).
# shellcheck disable=SC2013 # paths without spaces, one a word
for src in $(grep -o '${WRKSRC}/[^ ]*' "$tmp/recipes" | sed 's|^${WRKSRC}/||' | sort -u); do
    check "installed from $src, which exists" test -f "$src"
done
check "the binary is installed from cargo's target directory" \
    grep -q '${CARGO_TARGET_DIR}/${CARGO_BUILD_TARGET}/release/mlvpn ${STAGEDIR}${PREFIX}/sbin/mlvpn$' \
    "$tmp/recipes"
check "CARGO_CRATES: the note on make cargo-crates" grep -q 'make cargo-crates' "$port/Makefile"

echo "== FreeBSD port: the samples"
sample_sed=$(port_var MLVPN_SAMPLE_SED)
check "MLVPN_SAMPLE_SED is set" test -n "$sample_sed"
mlvpn=${MLVPN_BIN:-}
for candidate in target/release/mlvpn target/cross/x86_64-unknown-linux-musl/mlvpn; do
    [ -n "$mlvpn" ] || [ ! -x "$candidate" ] || mlvpn=$root/$candidate
done
for end in server client; do
    out=$tmp/$end.conf.sample
    eval "sed $sample_sed src/config/samples/$end.conf" >"$out"
    check_eq "$end.conf.sample: one line changed" 1 \
        "$(diff src/config/samples/$end.conf "$out" | grep -c '^>')"
    check "$end.conf.sample: the control socket is under /var/run" \
        grep -q '^control_unix_path = /var/run/mlvpn/' "$out"
    check "$end.conf.sample: nothing left under /run" not grep -q '= /run/' "$out"
    if [ -n "$mlvpn" ]; then
        chmod 600 "$out"
        check "$end.conf.sample: mlvpn check-config accepts it" "$mlvpn" check-config -c "$out"
    else
        echo "(no built mlvpn: check-config of the samples not run)"
    fi
done

echo "== FreeBSD rc script, against a stub of rc.subr"
rc_in=$port/files/mlvpn.in
check "rc script: # PROVIDE: mlvpn" grep -qx '# PROVIDE: mlvpn' "$rc_in"
check "rc script: # REQUIRE: NETWORKING" grep -qx '# REQUIRE: NETWORKING' "$rc_in"
check "rc script: # KEYWORD: shutdown" grep -qx '# KEYWORD: shutdown' "$rc_in"
check "rc script: sources /etc/rc.subr" grep -qx '\. /etc/rc\.subr' "$rc_in"
check "rc script: %%PREFIX%% is the only substitution (USE_RC_SUBR makes it)" \
    not sh -c "grep -o '%%[A-Z_]*%%' '$rc_in' | grep -v -x '%%PREFIX%%'"

fb=$tmp/freebsd
prefix=$fb/usr/local
mkdir -p "$fb/etc/rc.d" "$fb/var/run" "$prefix/sbin" "$prefix/etc/mlvpn"
: >"$prefix/etc/mlvpn/mlvpn.conf"
# mlvpn, recording how it is called; check-config fails while $fb/broken exists.
cat >"$prefix/sbin/mlvpn" <<SH
#!/bin/sh
echo "mlvpn \$*" >>"$fb/mlvpn.log"
if [ "\$1" = check-config ] && [ -f "$fb/broken" ]; then
    echo "$prefix/etc/mlvpn/mlvpn.conf:3: password: missing" >&2
    exit 1
fi
SH
chmod +x "$prefix/sbin/mlvpn"
# What rc.subr gives the script, reduced to what it uses; each action prints what the real
# one would run. Paths under /var/run are read under $fb; $fb/ps is the process table.
cat >"$fb/rc.subr" <<SH
load_rc_config() {
    if [ -r "$fb/rc.conf" ]; then . "$fb/rc.conf"; fi
}
checkyesno() {
    eval "_v=\\\${\$1}"
    case "\$_v" in [Yy][Ee][Ss] | [Tt][Rr][Uu][Ee] | [Oo][Nn] | 1) return 0 ;; esac
    return 1
}
check_pidfile() {
    [ -f "$fb\$1" ] || return 0
    read -r _pid _rest <"$fb\$1"
    while read -r _p _n; do
        if [ "\$_p" = "\$_pid" ] && [ "\$_n" = "\$2" ]; then echo "\$_p"; fi
    done <"$fb/ps"
}
kill() { echo "kill \$*"; }
wait_for_pids() { echo "wait_for_pids \$*"; }
run_rc_command() {
    rc_arg=\$1
    case " start stop restart status \$extra_commands " in
    *" \$rc_arg "*) ;;
    *) echo "unknown directive \$rc_arg" >&2; return 1 ;;
    esac
    eval "rc_flags=\\\${\${name}_flags}"
    rc_pid=\$(check_pidfile "\$pidfile" "\${procname:-\$command}")
    echo "rcvar \$rcvar pidfile \$pidfile procname \$procname"
    if [ "\$rc_arg" = start ]; then
        checkyesno "\$rcvar" || { echo "not enabled"; return 0; }
        if [ -n "\$rc_pid" ]; then echo "already running"; return 1; fi
        for _f in \$required_files; do
            [ -r "\$_f" ] || [ -r "$fb\$_f" ] || { echo "no \$_f"; return 1; }
        done
    fi
    eval "_precmd=\\\${\${rc_arg}_precmd} _cmd=\\\${\${rc_arg}_cmd}"
    if [ -n "\$_precmd" ]; then
        eval "\$_precmd" || { echo "precmd failed"; return 1; }
    fi
    if [ -n "\$_cmd" ]; then
        eval "\$_cmd"
        return
    fi
    case "\$rc_arg" in
    start) echo "run \$command \$rc_flags \$command_args" ;;
    stop) echo "kill -\${sig_stop:-TERM} \$rc_pid" ;;
    reload) echo "kill -\${sig_reload:-HUP} \$rc_pid" ;;
    restart) (run_rc_command stop) && (run_rc_command start) ;;
    status) echo "pid \$rc_pid" ;;
    esac
}
SH
# The rc script as the port installs it: %%PREFIX%% replaced; here, rc.subr is the stub.
sed -e "s|%%PREFIX%%|$prefix|g" -e "s|^\\. /etc/rc\\.subr\$|. $fb/rc.subr|" "$rc_in" >"$fb/etc/rc.d/mlvpn"
fbsd() {
    : >"$fb/mlvpn.log"
    rc=0
    sh "$fb/etc/rc.d/mlvpn" "$@" >"$fb/out" 2>&1 || rc=$?
}
: >"$fb/ps"

fbsd start
check_eq "start: mlvpn_enable defaults to NO" "0 not enabled" "$rc $(tail -n 1 "$fb/out")"
check_eq "start: not enabled, mlvpn not run" "" "$(cat "$fb/mlvpn.log")"

echo 'mlvpn_enable=YES' >"$fb/rc.conf"
fbsd start
check_eq "start: runs" 0 "$rc"
check_eq "start: check-config of the default file first" \
    "mlvpn check-config -c $prefix/etc/mlvpn/mlvpn.conf" "$(cat "$fb/mlvpn.log")"
check_eq "rc.subr's view: rcvar, pidfile, procname" \
    "rcvar mlvpn_enable pidfile /var/run/mlvpn.pid procname $prefix/sbin/mlvpn" "$(head -n 1 "$fb/out")"
check_eq "start: the command" \
    "run /usr/sbin/daemon -r -R 5 -f -c -S -T mlvpn -p /var/run/mlvpn.pid -P /var/run/mlvpn_daemon.pid $prefix/sbin/mlvpn -c $prefix/etc/mlvpn/mlvpn.conf" \
    "$(grep '^run ' "$fb/out" | sed 's/ *$//')"

# The command as daemon(8) reads it (its options of FreeBSD 14), then mlvpn's.
parse_daemon() {
    shift # run
    d_cmd=$1
    shift
    d_child="" d_super="" d_restart="" d_syslog="" d_bad=""
    OPTIND=1
    while getopts cfHrSp:P:t:u:m:o:s:T:l:R:C: opt; do
        case "$opt" in
        p) d_child=$OPTARG ;;
        P) d_super=$OPTARG ;;
        r | R) d_restart=yes ;;
        S | T) d_syslog=yes ;;
        c | f | H | t | u | m | o | s | l | C) ;;
        \?) d_bad=yes ;;
        esac
    done
    shift $((OPTIND - 1))
    d_program=$1
    shift
    d_args="$*"
}
echo 'mlvpn_enable=YES
mlvpn_config=/etc/mlvpn/site.conf
mlvpn_flags="--user _mlvpn -v"' >"$fb/rc.conf"
mkdir -p "$fb/etc/mlvpn"
: >"$fb/etc/mlvpn/site.conf"
fbsd start
# shellcheck disable=SC2046 # the words of the command
parse_daemon $(grep '^run ' "$fb/out")
check_eq "daemon(8): the command" /usr/sbin/daemon "$d_cmd"
check_eq "daemon(8): options it knows" "" "$d_bad"
check_eq "daemon(8): -p, the child's pid file, is the one rc.subr checks" /var/run/mlvpn.pid "$d_child"
check "daemon(8): -P, the supervisor's pid file, is another" test -n "$d_super" -a "$d_super" != "$d_child"
check_eq "daemon(8): restarts mlvpn" yes "$d_restart"
check_eq "daemon(8): mlvpn's output to syslog" yes "$d_syslog"
check_eq "daemon(8) runs mlvpn (procname)" "$prefix/sbin/mlvpn" "$d_program"
check_eq "mlvpn: mlvpn_config, then mlvpn_flags" "-c /etc/mlvpn/site.conf --user _mlvpn -v" "$d_args"
check_eq "start: check-config of mlvpn_config" "mlvpn check-config -c /etc/mlvpn/site.conf" \
    "$(cat "$fb/mlvpn.log")"

echo 'mlvpn_enable=YES' >"$fb/rc.conf"
touch "$fb/broken"
fbsd start
check "start, broken file: refused" test "$rc" -ne 0 -a -n "$(grep 'precmd failed' "$fb/out")"
check "start, broken file: mlvpn's message shown" grep -q 'password: missing' "$fb/out"
check "start, broken file: daemon(8) not run" not grep -q '^run ' "$fb/out"
rm "$fb/broken"

# Running: daemon(8) as 4241, mlvpn as 4242.
echo 4242 >"$fb/var/run/mlvpn.pid"
echo 4241 >"$fb/var/run/mlvpn_daemon.pid"
printf '4241 /usr/sbin/daemon\n4242 %s\n' "$prefix/sbin/mlvpn" >"$fb/ps"
fbsd start
check "start, running: refused" test "$rc" -ne 0
fbsd status
check_eq "status: mlvpn's pid" "pid 4242" "$(tail -n 1 "$fb/out")"
fbsd reload
check_eq "reload: check-config first" "mlvpn check-config -c $prefix/etc/mlvpn/mlvpn.conf" \
    "$(cat "$fb/mlvpn.log")"
check_eq "reload: SIGHUP to mlvpn itself" "0 kill -HUP 4242" "$rc $(tail -n 1 "$fb/out")"
touch "$fb/broken"
fbsd reload
check "reload, broken file: refused, no signal" not grep -q '^kill' "$fb/out"
fbsd restart
check "restart, broken file: refused, mlvpn left running" not grep -q '^kill' "$fb/out"
rm "$fb/broken"
fbsd stop
check_eq "stop: SIGTERM to the supervisor, then waits for both" \
    "0 Stopping mlvpn.|kill -TERM 4241|wait_for_pids 4242 4241" \
    "$rc $(grep -v '^rcvar' "$fb/out" | paste -s -d '|')"
check_eq "stop: mlvpn not run" "" "$(cat "$fb/mlvpn.log")"
printf '4242 %s\n' "$prefix/sbin/mlvpn" >"$fb/ps"
fbsd stop
check_eq "stop, no supervisor: SIGTERM to mlvpn" "0 kill -TERM 4242|wait_for_pids 4242" \
    "$rc $(grep '^kill\|^wait' "$fb/out" | paste -s -d '|')"
: >"$fb/ps"
fbsd stop
check "stop, not running: fails" test "$rc" -ne 0
check "stop, not running: says so" grep -q 'not running' "$fb/out"
fbsd frobnicate
check "an unknown command: fails" test "$rc" -ne 0

echo "== OpenBSD rc.d script, against a stub of rc.subr"
ob_src=cross/bsd/openbsd/mlvpn
check 'rc.d: daemon="/usr/local/sbin/mlvpn"' grep -qx 'daemon="/usr/local/sbin/mlvpn"' "$ob_src"
check 'rc.d: daemon_flags="--natural-title -c /etc/mlvpn/mlvpn.conf"' \
    grep -qx 'daemon_flags="--natural-title -c /etc/mlvpn/mlvpn.conf"' "$ob_src"
check "rc.d: sources /etc/rc.d/rc.subr" grep -qx '\. /etc/rc\.d/rc\.subr' "$ob_src"
check "rc.d: ends with rc_cmd" test "$(tail -n 1 "$ob_src")" = 'rc_cmd "$1"'
check "rc.d: executable" test -x "$ob_src"
ob=$tmp/openbsd
mkdir -p "$ob/etc/rc.d"
cat >"$ob/mlvpn-bin" <<SH
#!/bin/sh
echo "mlvpn \$*" >>"$ob/mlvpn.log"
if [ "\$1" = check-config ] && [ -f "$ob/broken" ]; then exit 1; fi
SH
chmod +x "$ob/mlvpn-bin"
# rc.subr as sourced by a script: the flags rcctl set in rc.conf.local replace daemon_flags,
# pexp is the command line pgrep looks for, the default methods are defined, and rc_cmd runs
# one, printing what it would run.
cat >"$ob/rc.subr" <<SH
_name=\${0##*/}
if [ -r "$ob/rc.conf.local" ]; then . "$ob/rc.conf.local"; fi
eval "_rcflags=\\\${\${_name}_flags:-}"
[ -z "\$_rcflags" ] || daemon_flags=\$_rcflags
pexp="\${daemon}\${daemon_flags:+ \${daemon_flags}}"
rc_pre() { :; }
rc_reload() { echo "pkill -HUP -xf \$pexp"; }
rc_stop() { echo "pkill -TERM -xf \$pexp"; }
rc_cmd() {
    echo "name \$_name daemon \$daemon daemon_flags \$daemon_flags rc_bg \${rc_bg:-NO}"
    case "\$1" in
    start)
        rc_pre || { echo "rc_pre failed"; return 1; }
        echo "start \$daemon \$daemon_flags"
        ;;
    reload)
        if [ "\${rc_reload:-}" = NO ]; then echo "no reload"; return 1; fi
        rc_reload
        ;;
    stop) rc_stop ;;
    *) return 1 ;;
    esac
}
SH
sed -e "s|^daemon=\"/usr/local/sbin/mlvpn\"\$|daemon=\"$ob/mlvpn-bin\"|" \
    -e "s|^\\. /etc/rc\\.d/rc\\.subr\$|. $ob/rc.subr|" "$ob_src" >"$ob/etc/rc.d/mlvpn"
obsd() {
    : >"$ob/mlvpn.log"
    rc=0
    sh "$ob/etc/rc.d/mlvpn" "$@" >"$ob/out" 2>&1 || rc=$?
}
obsd start
check_eq "start: what rc.subr sees" \
    "name mlvpn daemon $ob/mlvpn-bin daemon_flags --natural-title -c /etc/mlvpn/mlvpn.conf rc_bg YES" "$(head -n 1 "$ob/out")"
check_eq "start: rc_pre checks the file, then starts" \
    "0 mlvpn check-config --natural-title -c /etc/mlvpn/mlvpn.conf|start $ob/mlvpn-bin --natural-title -c /etc/mlvpn/mlvpn.conf" \
    "$rc $(cat "$ob/mlvpn.log")|$(tail -n 1 "$ob/out")"
echo 'mlvpn_flags="-c /etc/mlvpn/site.conf -v"' >"$ob/rc.conf.local"
obsd start
check_eq "start, rcctl set flags: rc_pre checks with those flags" \
    "mlvpn check-config -c /etc/mlvpn/site.conf -v" "$(cat "$ob/mlvpn.log")"
check_eq "start, rcctl set flags: started with them" "start $ob/mlvpn-bin -c /etc/mlvpn/site.conf -v" \
    "$(tail -n 1 "$ob/out")"
rm "$ob/rc.conf.local"
touch "$ob/broken"
obsd start
check "start, broken file: refused" not grep -q '^start' "$ob/out"
rm "$ob/broken"
obsd reload
check_eq "reload: SIGHUP by rc.subr's default" "pkill -HUP -xf $ob/mlvpn-bin --natural-title -c /etc/mlvpn/mlvpn.conf" \
    "$(tail -n 1 "$ob/out")"
check_eq "reload: mlvpn not run" "" "$(cat "$ob/mlvpn.log")"

echo "== the BSD hook script, with ifconfig, route and uname stubbed"
hook=cross/bsd/mlvpn_updown.sh
hk=$tmp/hook
mkdir -p "$hk/bin"
for tool in ifconfig route; do
    cat >"$hk/bin/$tool" <<SH
#!/bin/sh
echo "$tool \$*" >>"$hk/log"
if [ "$tool" = ifconfig ] && [ \$# -eq 1 ]; then
    if [ -f "$hk/tap" ]; then
        echo "\$1: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500"
    else
        echo "\$1: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> metric 0 mtu 1500"
    fi
fi
SH
done
printf '#!/bin/sh\necho "${FAKE_OS:-FreeBSD}"\n' >"$hk/bin/uname"
chmod +x "$hk/bin/"*
# mlvpn runs the hook with the configuration's variables and a PATH; here the stubs come first.
run_hook() {
    : >"$hk/log"
    rc=0
    env -i PATH="$hk/bin:/usr/bin:/bin" "$@" sh "$hook" "$device" "$event" >"$hk/out" 2>&1 || rc=$?
}
device=tun0 event=tuntap_up
run_hook MTU=1419 IP4=10.42.42.1/30 IP4_GATEWAY=10.42.42.2 IP6=fd42::1/64 \
    IP4_ROUTES="192.168.1.0/24 192.168.2.0/24"
cat >"$hk/expected" <<'LOG'
ifconfig tun0 mtu 1419
ifconfig tun0
ifconfig tun0 inet 10.42.42.1/30 10.42.42.2
ifconfig tun0 inet6 fd42::1 prefixlen 64
ifconfig tun0 up
route -n delete -inet 192.168.1.0/24
route -n add -inet 192.168.1.0/24 10.42.42.2
route -n delete -inet 192.168.2.0/24
route -n add -inet 192.168.2.0/24 10.42.42.2
LOG
check_eq "tuntap_up: succeeds" 0 "$rc"
check_same "tuntap_up, tun: MTU, addresses with the peer's, routes via the gateway" "$hk/expected" "$hk/log"
run_hook MTU=1419 IP4=10.42.42.1/30
check "tuntap_up, tun without ip4_gateway: fails" test "$rc" -ne 0
check "tuntap_up, tun without ip4_gateway: says why" grep -q 'needs ip4_gateway' "$hk/out"
check "tuntap_up, tun without ip4_gateway: no address set" not grep -q 'inet 10' "$hk/log"
touch "$hk/tap"
device=tap0
run_hook MTU=1405 IP4=10.42.42.1/30 IP4_ROUTES=192.168.1.0/24
check_eq "tuntap_up, tap: the address alone" "ifconfig tap0 inet 10.42.42.1/30" "$(grep '^ifconfig.* inet' "$hk/log")"
check_eq "tuntap_up, tap, FreeBSD: a route to the device" \
    "route -n add -inet 192.168.1.0/24 -interface tap0" "$(grep 'route -n add' "$hk/log")"
run_hook FAKE_OS=OpenBSD MTU=1405 IP4=10.42.42.1/30 IP4_ROUTES=192.168.1.0/24
check "tuntap_up, tap, OpenBSD, a route without gateway: fails" test "$rc" -ne 0
check "tuntap_up, tap, OpenBSD, a route without gateway: says why" grep -q 'no gateway' "$hk/out"
rm "$hk/tap"
device=tun0 event=tuntap_down
run_hook IP4=10.42.42.1/30 IP6=fd42::1/64 IP4_ROUTES=192.168.1.0/24
check_eq "tuntap_down: routes and addresses removed" \
    "0 route -n delete -inet 192.168.1.0/24|ifconfig tun0 inet 10.42.42.1 -alias|ifconfig tun0 inet6 fd42::1 -alias" \
    "$rc $(paste -s -d '|' "$hk/log")"
event=rtun_up
run_hook IP4=10.42.42.1/30
check_eq "rtun_up: nothing to do" "0 " "$rc $(cat "$hk/log")"

echo "== shellcheck"
if command -v shellcheck >/dev/null; then
    for f in $(find cross/bsd -type f | sort) tests/pkg/bsd_test.sh; do
        head -n 1 "$f" | grep -q '^#!/bin/k*sh' || continue
        check "shellcheck -s sh $f" shellcheck -s sh "$f"
    done
else
    fail "shellcheck is not installed (apt-get install shellcheck)"
fi

finish

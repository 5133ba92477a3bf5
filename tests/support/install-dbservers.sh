#!/bin/sh
# Install the database servers that the database tests start by themselves
# (tests/support/databases.py): PostgreSQL, MariaDB and Redis from Debian, and RabbitMQ on a best
# effort basis (its tests skip and say why without it).
#
# Idempotent and quiet: a package is installed only when its binaries are missing; nothing is
# printed on success and one line per failure. No system service is started: apt runs under a
# policy-rc.d that denies starts (a temporary one, only when the machine has none), and a service
# of these packages found running anyway is stopped, so that it holds no port or data directory.
#
# Exit status: 0 when PostgreSQL, MariaDB and Redis are there at the end (RabbitMQ may be missing),
# 1 otherwise. Run as root (`make test` does); as another user it only reports what is missing.
set -u

say() { echo "install-dbservers: $*" >&2; }

have_postgres() {
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/psql" ] && [ -x "$d/pg_isready" ] && return 0
    done
    return 1
}
have_mariadb() {
    { [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; } &&
        { command -v mariadb-install-db >/dev/null 2>&1 || command -v mysql_install_db >/dev/null 2>&1; } &&
        { command -v mariadb-admin >/dev/null 2>&1 || command -v mysqladmin >/dev/null 2>&1; }
}
have_redis() { command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; }
have_rabbitmq() { [ -x /usr/sbin/rabbitmq-server ] || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; }

missing=""
have_postgres || missing="$missing postgresql"
have_mariadb || missing="$missing mariadb-server"
have_redis || missing="$missing redis-server"
# mysqlclient (MySQLdb) builds against libmariadb with pkg-config.
[ -f /usr/include/mariadb/mysql.h ] && command -v pkg-config >/dev/null 2>&1 || missing="$missing libmariadb-dev pkg-config"
want_rabbit=""
have_rabbitmq || want_rabbit="rabbitmq-server"

# The pids of a package's running system service, from its pid files (never by starting a client:
# `rabbitmqctl status` would itself start an epmd daemon).
service_pids() {
    for f in "$@"; do
        [ -r "$f" ] || continue
        pid=$(head -n 1 "$f" 2>/dev/null | tr -dc 0-9)
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
    done
}
stop_service() {  # name, pid files...: stop it if it runs, and wait until its processes are gone
    name=$1
    shift
    pids=$(service_pids "$@")
    [ -n "$pids" ] || return 0
    if command -v service >/dev/null 2>&1; then
        service "$name" stop >/dev/null 2>&1
    elif [ -x "/etc/init.d/$name" ]; then
        "/etc/init.d/$name" stop >/dev/null 2>&1
    fi
    i=0
    while [ $i -lt 100 ]; do
        alive=""
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    say "the system service $name (pid $(echo $pids)) is still running after 'service $name stop': its port may be taken"
    return 0
}
stop_system_services() {
    [ "$(id -u)" -eq 0 ] || return 0
    stop_service postgresql /var/run/postgresql/*.pid
    stop_service mariadb /run/mysqld/mysqld.pid /var/run/mysqld/mysqld.pid
    stop_service redis-server /run/redis/redis-server.pid /var/run/redis/redis-server.pid
    if [ -n "$(service_pids /run/rabbitmq/pid /var/run/rabbitmq/pid)" ]; then
        stop_service rabbitmq-server /run/rabbitmq/pid /var/run/rabbitmq/pid
        # The node's epmd daemon (port 4369) outlives it: end it if no other node uses it.
        command -v epmd >/dev/null 2>&1 && epmd -kill >/dev/null 2>&1
    fi
}

if [ -z "$missing" ] && [ -z "$want_rabbit" ]; then
    stop_system_services
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    for p in $missing; do say "$p is not installed and this is not root: cannot install it"; done
    [ -n "$want_rabbit" ] && say "rabbitmq-server is not installed (not root: not installing it); its tests will skip"
    [ -z "$missing" ]
    exit $?
fi

# Deny service starts during the installation, through a temporary policy-rc.d when there is none.
policy=/usr/sbin/policy-rc.d
made_policy=""
log=$(mktemp)
cleanup() {
    [ -n "$made_policy" ] && rm -f "$policy"
    rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# made by tests/support/install-dbservers.sh: deny service starts\nexit 101\n' >"$policy" &&
        chmod 755 "$policy" && made_policy=1
fi

# Wait for the dpkg lock rather than fail when another apt-get runs (e.g. a parallel make target).
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@" >>"$log" 2>&1; }
updated=""
apt_install() {  # packages...: 0 when installed; the output goes to $log
    : >"$log"
    apt_get install -y -qq --no-install-recommends "$@" && return 0
    if [ -z "$updated" ]; then  # stale or missing package lists: update once, try again
        updated=1
        apt_get update -qq || true
        apt_get install -y -qq --no-install-recommends "$@" && return 0
    fi
    return 1
}
last_error() { grep -E '^(E:|dpkg:)' "$log" | tail -n 1; }

status=0
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    if ! apt_install $missing; then
        say "apt-get install of$missing failed: $(last_error)"
        status=1
    fi
    have_postgres || { say "postgresql: initdb, postgres, psql or pg_isready still missing under /usr/lib/postgresql/*/bin"; status=1; }
    have_mariadb || { say "mariadb-server: mariadbd, mariadb-install-db or mariadb-admin still missing"; status=1; }
    have_redis || { say "redis-server: still missing"; status=1; }
fi

if [ -n "$want_rabbit" ]; then
    if ! apt_install rabbitmq-server || ! have_rabbitmq; then
        say "rabbitmq-server could not be installed (best effort, its tests will skip): $(last_error)"
    fi
fi

stop_system_services
exit $status

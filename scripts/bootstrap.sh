# Sourced by scripts/run-tests and scripts/run-cluster (bash).
#
# Makes sure this machine has what chatnet needs, installing only what is
# missing: the Debian packages redis-server, redis-sentinel, zookeeper,
# default-jre-headless, rabbitmq-server, chromium, nodejs, npm and
# python3-venv, and the repo's .venv with chatnet installed in editable
# "compat" mode (so that twistd finds the repo's twisted/plugins). The package
# is reinstalled only when setup.cfg or pyproject.toml changed since the last
# install. Prints nothing unless a step fails; then it shows that step's output.
# With CHATNET_BOOTSTRAP_PROGRESS=1 (scripts/run-cluster) it also says, on
# stderr, each install step it starts and how long it took.
#
# Afterwards: CHATNET_ROOT is the repo root, CHATNET_VENV its .venv, and
# .venv/bin is first on PATH.

_chatnet_bootstrap() {
    local root="$1"
    local venv="$root/.venv"
    local py="${CHATNET_PYTHON:-python3}"
    local log
    log="$(mktemp "${TMPDIR:-/tmp}/chatnet-bootstrap.XXXXXX")" || return 1

    _chatnet_step() {
        # _chatnet_step DESCRIPTION COMMAND...: run quietly, show the output on failure.
        local what="$1"
        shift
        local began=$SECONDS
        [ -z "${CHATNET_BOOTSTRAP_PROGRESS:-}" ] || echo "bootstrap: $what ..." >&2
        if ! "$@" >"$log" 2>&1; then
            echo "bootstrap: $what failed:" >&2
            cat "$log" >&2
            return 1
        fi
        [ -z "${CHATNET_BOOTSTRAP_PROGRESS:-}" ] || echo "bootstrap: $what done ($((SECONDS - began)) s)" >&2
    }

    # 1. System packages, only those that are missing.
    local missing=()
    if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
        missing+=(redis-server)
    fi
    [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
    command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
    # the broker the message-export plugin is tested against
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
    # the real clients of the end-to-end tests: a browser and Node.js (ws)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    # Redis Sentinel, for the tests of a Redis without a single point of failure
    command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
    # a dictionary with place names and inflections: the profanity filter's allow-list
    [ -f /usr/share/dict/british-english-huge ] || missing+=(wbritish-huge)
    if ! command -v "$py" >/dev/null 2>&1; then
        missing+=(python3 python3-venv)
    elif ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        _chatnet_step "apt-get update" "${sudo[@]}" apt-get update -q || { rm -f "$log"; return 1; }
        _chatnet_step "apt-get install ${missing[*]}" \
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q "${missing[@]}" || { rm -f "$log"; return 1; }
    fi

    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
        echo "bootstrap: chatnet needs Python 3.10 or newer; $py is $("$py" --version 2>&1)" >&2
        rm -f "$log"
        return 1
    fi

    # 2. The virtualenv (made again if it is broken, e.g. after the repo moved).
    if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        rm -rf "$venv"
        _chatnet_step "creating $venv" "$py" -m venv "$venv" || { rm -f "$log"; return 1; }
        _chatnet_step "upgrading pip in $venv" \
            "$venv/bin/python" -m pip install -q --upgrade pip || { rm -f "$log"; return 1; }
    fi

    # 3. chatnet and its dependencies, when the packaging files changed.
    local stamp="$venv/.chatnet-install-hash"
    local hash
    hash="$(cat "$root/setup.cfg" "$root/pyproject.toml" 2>/dev/null | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ] \
        || ! (cd / && "$venv/bin/python" -c 'import chatnet') >/dev/null 2>&1; then
        rm -f "$stamp"
        _chatnet_step "pip install -e '.[dev]'" \
            "$venv/bin/python" -m pip install -q -e "$root[dev]" \
            --config-settings editable_mode=compat || { rm -f "$log"; return 1; }
        echo "$hash" >"$stamp"
    fi

    rm -f "$log"
    unset -f _chatnet_step
    export CHATNET_ROOT="$root"
    export CHATNET_VENV="$venv"
    case ":$PATH:" in
        *":$venv/bin:"*) ;;
        *) export PATH="$venv/bin:$PATH" ;;
    esac
}

_chatnet_bootstrap "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
unset -f _chatnet_bootstrap

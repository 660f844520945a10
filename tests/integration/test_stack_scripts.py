"""The scripts that start and stop a stack: a port already taken is named,
the log tail is shown, what was started is stopped again, and no process is
left behind."""
import os
import socket
import subprocess

ENV_KEYS = ("FPESA_VAR", "FPESA_AMQP_PORT", "FPESA_DIST_PORT", "FPESA_EPMD_PORT", "FPESA_PG_PORT",
            "FPESA_MAPPER_PORT", "FPESA_MAPPER2_PORT", "FPESA_LIVE_PORT", "FPESA_NGINX_PORT",
            "FPESA_AUX_PORT", "FPESA_NODE", "FPESA_PG_DIR", "FPESA_AMQP_URL", "FPESA_DATABASE_URL",
            "FPESA_HTTP_LISTEN", "FPESA_LIVE_LISTEN")


def sub_stack_env(stack, name):
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env["FPESA_STACK"] = name
    env["FPESA_PORT_BASE"] = str(stack.aux_port + 10)
    return env


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def recorded_pids(var):
    run = os.path.join(var, "run")
    pids = {}
    if os.path.isdir(run):
        for n in os.listdir(run):
            try:
                pids[n] = int(open(os.path.join(run, n)).read())
            except (OSError, ValueError):
                pass
    return pids


def test_port_taken_is_named_and_nothing_is_left_behind(stack, tmp_path):
    env = sub_stack_env(stack, "portcheck")
    var = os.path.join(stack.root, "var", "portcheck")
    script = os.path.join(stack.root, "scripts", "stack.sh")
    # Take the sub-stack's PostgreSQL port (base + 3): RabbitMQ starts first,
    # so the failure must also stop the RabbitMQ it had started.
    pg_port = stack.aux_port + 10 + 3
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", pg_port))
    blocker.listen(1)
    started = {}
    try:
        r = subprocess.run([script, "start", "servers"], env=env, capture_output=True, text=True,
                           timeout=120)
        started = recorded_pids(var)
        assert r.returncode != 0
        assert "port %d" % pg_port in r.stderr, r.stderr
        assert "postgresql" in r.stderr
    finally:
        blocker.close()
        subprocess.run([script, "stop"], env=env, capture_output=True, timeout=120)
    # Nothing it started is still running, and no pid files remain.
    leftovers = {n: p for n, p in recorded_pids(var).items() if alive(p)}
    assert not leftovers, leftovers
    for n, p in started.items():
        assert not alive(p), "%s (pid %d) is still running" % (n, p)
    # The RabbitMQ node of the sub-stack is not listening any more.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", stack.aux_port + 10)) != 0

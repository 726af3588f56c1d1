"""What a delivery costs at the system-call floor on this machine: one
``send()`` of one WebSocket frame per connection per turn, and one ``recv()``
per frame that comes in, with nothing else done (no parsing, no JSON, no
stores). bench/RESULTS.md compares each system's CPU per delivery with it.

    python -m bench.syscall_floor [--connections 10] [--sends 200000] [--size 180]

A drain process (this file with ``--drain``) accepts the connections over
loopback TCP and reads everything with ``epoll`` + ``recv``; the measuring
process then writes ``--size``-byte frames to every connection in turns, in
three ways, each timed by its own CPU (``getrusage``: user + system):

* ``send``: ``sock.send(frame)`` per connection in a plain Python loop: the
  floor of a Python server (the system call and the least Python around it);
* ``twisted``: ``transport.write(frame)`` per connection in a reactor turn,
  Twisted sending it when the socket is writable (its own path: the write
  is buffered, the socket registered for writing, sent, unregistered),
  one reactor iteration per turn included;
* ``recv`` (the drain's side): CPU per ``recv()`` call and frames per call.

Over loopback the kernel does the receiving side's TCP work in the sender's
system call, so ``send`` here includes what a real network card would take
off the CPU. Prints one JSON line per measure. Linux only.
"""
import argparse
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def drain(port_file):
    """Accept connections and read them until all are closed; print the
    CPU per recv call and the frames' bytes."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.replace(port_file + ".tmp", port_file)
    sel = selectors.EpollSelector()
    sel.register(srv, selectors.EVENT_READ)
    conns = 0
    calls = 0
    nbytes = 0
    started = None
    t0 = None
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is srv:
                c, _ = srv.accept()
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                conns += 1
                continue
            data = s.recv(65536)
            if t0 is None:
                t0 = cpu()
                started = time.perf_counter()
            calls += 1
            if not data:
                sel.unregister(s)
                s.close()
                conns -= 1
                if conns == 0:
                    u, k = cpu()
                    print(json.dumps({"recv_calls": calls, "bytes": nbytes,
                                      "user_s": round(u - t0[0], 4), "sys_s": round(k - t0[1], 4),
                                      "seconds": round(time.perf_counter() - started, 3)}),
                          flush=True)
                    return
            nbytes += len(data)


def start_drain(tmpdir):
    port_file = os.path.join(tmpdir, f"floor-{os.getpid()}.port")
    proc = subprocess.Popen([sys.executable, "-m", "bench.syscall_floor", "--drain", port_file],
                            stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the drain process did not start")
        time.sleep(0.01)
    with open(port_file) as f:
        port = int(f.read())
    os.unlink(port_file)
    return proc, port


def finish_drain(proc, frame_size):
    out = json.loads(proc.stdout.read().strip().splitlines()[-1])
    proc.wait()
    frames = out["bytes"] / frame_size
    total = out["user_s"] + out["sys_s"]
    return {"measure": "recv", "recv_calls": out["recv_calls"],
            "frames_per_recv": round(frames / max(1, out["recv_calls"]), 2),
            "us_per_recv_call": round(total * 1e6 / max(1, out["recv_calls"]), 2),
            "sys_us_per_recv_call": round(out["sys_s"] * 1e6 / max(1, out["recv_calls"]), 2),
            "us_per_frame": round(total * 1e6 / max(1, frames), 2)}


def measure_send(n, sends, frame, tmpdir):
    proc, port = start_drain(tmpdir)
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    turns = max(1, sends // n)
    u0, k0 = cpu()
    t0 = time.perf_counter()
    for _ in range(turns):
        for s in socks:
            s.send(frame)
    u1, k1 = cpu()
    wall = time.perf_counter() - t0
    for s in socks:
        s.close()
    done = turns * n
    result = {"measure": "send", "connections": n, "sends": done,
              "us_per_send": round((u1 - u0 + k1 - k0) * 1e6 / done, 2),
              "sys_us_per_send": round((k1 - k0) * 1e6 / done, 2),
              "user_us_per_send": round((u1 - u0) * 1e6 / done, 2),
              "sends_per_s_wall": round(done / wall)}
    return result, finish_drain(proc, len(frame))


def measure_twisted(n, sends, frame, tmpdir):
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import protocol, reactor

    proc, port = start_drain(tmpdir)
    protos = []
    turns = max(1, sends // n)
    box = {}

    class P(protocol.Protocol):
        def connectionMade(self):
            self.transport.setTcpNoDelay(True)
            protos.append(self)
            if len(protos) == n:
                reactor.callLater(0.1, begin)

    def begin():
        box["t"] = cpu()
        box["left"] = turns
        turn()

    def turn():
        if box["left"] == 0:
            # the last turn's writes go out in the next reactor iterations;
            # the reactor then sleeps in epoll_wait (no CPU) until the end
            reactor.callLater(0.05, end)
            return
        box["left"] -= 1
        for p in protos:
            p.transport.write(frame)
        reactor.callLater(0, turn)

    def end():
        box["u"] = cpu()
        for p in protos:
            p.transport.loseConnection()
        reactor.callLater(0.2, reactor.stop)

    f = protocol.ClientFactory()
    f.protocol = P
    for _ in range(n):
        reactor.connectTCP("127.0.0.1", port, f)
    reactor.run()
    (u0, k0), (u1, k1) = box["t"], box["u"]
    done = turns * n
    result = {"measure": "twisted", "connections": n, "writes": done,
              "us_per_write": round((u1 - u0 + k1 - k0) * 1e6 / done, 2),
              "sys_us_per_write": round((k1 - k0) * 1e6 / done, 2),
              "user_us_per_write": round((u1 - u0) * 1e6 / done, 2)}
    return result, finish_drain(proc, len(frame))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.syscall_floor",
                                description="CPU per send() and recv() of one frame at the floor.")
    p.add_argument("--connections", type=int, default=10)
    p.add_argument("--sends", type=int, default=200000)
    p.add_argument("--size", type=int, default=180, help="bytes per frame (a chat frame: ~180)")
    p.add_argument("--only", choices=("send", "twisted"))
    p.add_argument("--drain", metavar="PORTFILE", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.drain:
        drain(opts.drain)
        return 0
    frame = b"\x81\x7e" + (opts.size - 4).to_bytes(2, "big") + b"x" * (opts.size - 4)
    tmpdir = os.environ.get("TMPDIR", "/tmp")
    measures = {"send": measure_send, "twisted": measure_twisted}
    if opts.only:
        for line in measures[opts.only](opts.connections, opts.sends, frame, tmpdir):
            line["load"] = round(os.getloadavg()[0], 2)
            print(json.dumps(line), flush=True)
        return 0
    # each measure in a fresh process (a reactor is installed once per process)
    for name in measures:
        out = subprocess.run([sys.executable, "-m", "bench.syscall_floor", "--only", name,
                              "--connections", str(opts.connections), "--sends", str(opts.sends),
                              "--size", str(opts.size)], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        sys.stdout.write(out.stdout)
        sys.stderr.write(out.stderr[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measures osb-broker's time from process start to its first response.

    python3 bench/startup.py target/release/osb-broker examples/quickstart.toml

Starts the broker seven times on a fresh state file, each time polling
GET /health over a raw socket (no client program to start), and prints the
times in milliseconds and their median.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time

RUNS = 7
PORT = 18099


def fresh_config(source, state):
    with open(source) as file:
        lines = file.read().splitlines()
    lines = [f'sqlite = "{state}"' if line.startswith("sqlite = ") else line for line in lines]
    return "\n".join(lines) + "\n"


def answered(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return connection.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def main():
    binary, source = sys.argv[1], sys.argv[2]
    times = []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as folder:
            config = os.path.join(folder, "broker.toml")
            with open(config, "w") as file:
                file.write(fresh_config(source, os.path.join(folder, "state.db")))
            started = time.perf_counter()
            broker = subprocess.Popen(
                [binary, "serve", "--config", config, "--listen", f"127.0.0.1:{PORT}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": "warn"},
            )
            deadline = started + 10
            while not answered(PORT):
                if time.perf_counter() > deadline:
                    broker.kill()
                    sys.exit("the broker did not answer within 10 seconds")
                time.sleep(0.0005)
            times.append((time.perf_counter() - started) * 1000)
            broker.kill()
            broker.wait()
    times.sort()
    print("start to first answer (ms):", " ".join(f"{t:.1f}" for t in times))
    print(f"median: {times[len(times) // 2]:.1f} ms")


if __name__ == "__main__":
    main()

"""Opens COUNT watches of namespaces through the proxy (each its own TLS connection), waits
until every one has its answer head, prints the proxy's RSS while they are open, closes them.

Usage: python3 bench/watches.py HOST PORT CA_FILE TOKEN COUNT PROXY_PID
"""
import asyncio
import ssl
import sys


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                yield line.split(":")[0], line.split(":")[1].strip()


async def watch(host, port, ctx, token, ready):
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    writer.write(
        f"GET /api/v1/namespaces?watch=true HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise SystemExit(f"a watch was answered {status!r}")
    ready.append(1)
    return reader, writer


async def main():
    host, port, ca, token, count, pid = sys.argv[1:7]
    ctx = ssl.create_default_context(cafile=ca)
    ready = []
    conns = []
    # Opened in batches, so the burst of handshakes is not what is measured.
    for start in range(0, int(count), 100):
        batch = [watch(host, int(port), ctx, token, ready) for _ in range(min(100, int(count) - start))]
        conns += await asyncio.gather(*batch)
    await asyncio.sleep(2)
    print(f"{len(ready)} watches open; proxy " + ", ".join(f"{k} {v}" for k, v in rss(pid)))
    for _, w in conns:
        w.close()
    await asyncio.sleep(2)


asyncio.run(main())

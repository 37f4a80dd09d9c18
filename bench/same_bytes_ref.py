"""Reference: bare aiohttp serving a frozen copy of another exporter's exact bytes.

    python bench/same_bytes_ref.py --source http://127.0.0.1:9477/metrics --port 9303

It fetches the source's /metrics once (identity and gzip) and serves those bytes with the
smallest possible handler (the shape of ../shared/bench/refs/aiohttp_cached.py), so that a
comparison with the source measures the exporter's own per-scrape cost, not the body size.
"""
import argparse
import urllib.request

from aiohttp import web

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def fetch(url: str, gzip: bool) -> bytes:
    headers = {"Accept": "text/plain;version=0.0.4"}
    if gzip:
        headers["Accept-Encoding"] = "gzip"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        return response.read()


def make_app(source: str) -> web.Application:
    body, body_gz = fetch(source, False), fetch(source, True)
    plain_headers = {"Content-Type": CONTENT_TYPE}
    gz_headers = {"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip",
                  "Vary": "Accept-Encoding"}

    async def metrics(request):
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(body=body_gz, headers=gz_headers)
        return web.Response(body=body, headers=plain_headers)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--addr", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9303)
    args = parser.parse_args()
    web.run_app(make_app(args.source), host=args.addr, port=args.port, access_log=None,
                print=None)


if __name__ == "__main__":
    main()

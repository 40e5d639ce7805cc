"""Figure P of scripts/bench.py (GitHub issue 17): a capped download through a company proxy against the same download
direct. The proxy is Debian's squid on loopback (started here, Basic auth as a company would have it, credentials
from HTTP_PROXY); the loopback Hub caps every connection at CAP, as a CDN does. Each run is a fresh process into an
empty folder; repeats alternate which goes first; the ratio is the median of the per-repeat ratios of seconds.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import bench_support as bs
from bench_capped import CAP, CONNECTIONS, _clean
from bench_render import Row
from bench_support import ROOT, WORK, blob, mb_s, median, rotate

GOAL = 1.10  # through the proxy at most 10% slower than direct
ROUTE_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@dataclass
class ProxyFigure:
    size: int = 0
    repeats: int = 0
    seconds: dict[str, list[float]] = field(default_factory=dict)  # direct, proxy
    through: int = 0  # requests squid logged for the proxied runs
    missing: str | None = None

    def ratio(self) -> float:
        return median([p / d for d, p in zip(self.seconds["direct"], self.seconds["proxy"])])

    def rows(self) -> list[Row]:
        what = (f"P. Behind a proxy: `ModelDownloader` through squid (Basic auth, HTTP_PROXY) vs direct, one "
                f"{bs.size_label(self.size) if self.size else 'capped'} file, {mb_s(CAP)} per connection (time)")
        if self.missing:
            return [Row(what, "not measured", self.missing, "—", f"≤ {GOAL:.2f}×", None)]
        r = self.ratio()
        return [Row(what, f"{median(self.seconds['proxy']):.2f} s", f"{median(self.seconds['direct']):.2f} s", f"{r:.2f}×",
                    f"≤ {GOAL:.2f}× (within 10%)", r <= GOAL)]

    def notes(self) -> list[str]:
        if self.missing:
            return [f"Figure P: not measured ({self.missing})."]
        runs = ", ".join(f"{k} " + "/".join(f"{s:.2f}" for s in v) for k, v in self.seconds.items())
        return [f"Figure P: {self.repeats} repeat(s), each a fresh process (connections={CONNECTIONS}) into an empty "
                f"folder, the order alternating; seconds downloading inside the process after imports: {runs}. squid "
                f"logged {self.through} requests for the proxied runs (none for the direct ones), so the bytes went "
                "through it. Ratio: median of the per-repeat ratios proxy / direct (lower is better)."]


def _squid():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.remote import netfixtures

    if not (netfixtures.SQUID and netfixtures.NCSA and netfixtures.HTPASSWD):
        return None
    return netfixtures.Squid().start()


def fig_proxy(hub, plan) -> ProxyFigure:
    size = plan.one_file
    squid = _squid()
    if squid is None:
        return ProxyFigure(missing="squid or apache2-utils is not installed (apt-get install squid apache2-utils)")
    seconds: dict[str, list[float]] = {"direct": [], "proxy": []}
    through = 0
    try:
        model = bs.publish(hub, "whisper:proxied", "bench/proxied", {"model.safetensors": blob(size, 3)})
        index = bs.write_index(WORK / "proxy" / "one.yaml", [model])
        bs.read_through([blob(size, 3)])
        base = {k: v for k, v in os.environ.items() if k.lower() not in ROUTE_VARIABLES}
        hub.throttle(CAP)
        for i in range(plan.capped_repeats):
            for route in rotate(["direct", "proxy"], i):
                out = WORK / "proxy" / route
                out.mkdir(parents=True, exist_ok=True)
                env = dict(base, HTTP_PROXY=squid.auth_url()) if route == "proxy" else base
                mark = squid.mark()
                child = bs.py_child(["download-ours", str(index), str(out / "hub"), str(out / "state"), hub.endpoint,
                                     model.name, str(CONNECTIONS)], env)
                got = child.json()
                assert got["bytes"] == model.total, (route, got)
                logged = len([e for e in squid.entries(mark) if e["method"] != "-"])
                assert (logged > 0) == (route == "proxy"), (route, logged)
                through += logged
                seconds[route].append(got["seconds"])
                _clean(out)
    finally:
        hub.throttle(None)
        squid.stop()
        bs.remove(WORK / "proxy")
    return ProxyFigure(size, plan.capped_repeats, seconds, through)


if __name__ == "__main__":  # a quick look on its own: python scripts/bench_proxy.py [MiB]
    bs.isolate()
    from lyricsub_hub.testing.hub import TestHub

    class _Plan:
        one_file = int(sys.argv[1] if len(sys.argv) > 1 else 64) * bs.MIB
        capped_repeats = 3

    with TestHub() as test_hub:
        figure = fig_proxy(test_hub, _Plan())
    for row in figure.rows():
        print(row)
    print(*figure.notes(), sep="\n")

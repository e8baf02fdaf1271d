"""Run every benchmark and rewrite the table of figures in benchmarks/README.md.

    scripts/bench                      # run them all (root for most), rewrite the table
    scripts/bench --only density,scale # just those; the others keep their last figures
    scripts/bench --table              # rewrite the table from the stored results only

Each run's figures go to ``benchmarks/results/<name>.json``: benchmarks with
``--json`` write it themselves; for the others the figures are read from
their printed lines (the parsers below). A benchmark that fails, or whose
lines no longer match, keeps its previous figures and is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _figures import Figures  # noqa: E402

RESULTS = HERE / "results"
README = HERE / "README.md"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
NUM = r"([0-9][0-9,]*\.?[0-9]*)"

Parser = Callable[[str, Figures], None]


def num(text: str) -> float:
    return float(text.replace(",", ""))


def grab(pattern: str, out: str) -> re.Match[str]:
    found = re.search(pattern, out)
    if found is None:
        raise LookupError(f"no line matches {pattern!r}")
    return found


# --- parsers of printed lines (benchmarks without --json) --------------------------------


def parse_containerd(out: str, f: Figures) -> None:
    for label, figure, target in (
        ("pull_image vs ctr images pull", "pull of busybox + 5 x 11 MiB layers", "<= 0.7x"),
        ("container cycle vs ctr", "create+start+stop+delete cycle", "<= 0.5x"),
        (
            "cycle, shared shim vs ctr",
            "the same cycle, shim_groups=1 (another bot running)",
            "<= 0.5x",
        ),
    ):
        m = grab(re.escape(label) + rf"\s+ours\s+{NUM} ms\s+ctr\s+{NUM} ms\s+ratio\s+{NUM}x", out)
        f.add(
            figure,
            num(m[3]),
            "x",
            f"ctr {num(m[2]):.0f} ms (ours {num(m[1]):.0f} ms)",
            target,
        )


def parse_pull(out: str, f: Figures) -> None:
    image = grab(r"image: (.*)", out)[1]
    ours = grab(rf"pull_image\s+median {NUM}s", out)
    ctr = grab(rf"ctr images pull\s+median {NUM}s", out)
    ratio = grab(rf"ratio ours/ctr\s+{NUM}", out)
    f.add(
        f"pull of {image}",
        num(ratio[1]),
        "x",
        f"ctr images pull {num(ctr[1]):.2f} s (ours {num(ours[1]):.2f} s)",
        "<= 0.7x",
    )


def parse_e2e(out: str, f: Figures) -> None:
    m = grab(rf"ours {NUM} ms, ctr {NUM} ms, ratio {NUM}x", out)
    f.add(
        "cold start to first exec",
        num(m[3]),
        "x",
        f"ctr run -d + CNI + TCP {num(m[2]):.0f} ms (ours {num(m[1]):.0f} ms)",
        "<= 0.8x",
    )
    ready = grab(rf"task start to agent answering \(median, ours\): {NUM} ms", out)
    f.add("task start to agent answering", num(ready[1]), "ms")
    lat = grab(rf"p50 {NUM} ms, p99 {NUM} ms", out)
    f.add("warm exec('true') over the bridge, p50", num(lat[1]), "ms")
    f.add("warm exec('true') over the bridge, p99", num(lat[2]), "ms")


def parse_manager(out: str, f: Figures) -> None:
    m = grab(rf"Manager overhead {NUM} µs/op \(target <= 50\), ratio {NUM}x", out)
    one = grab(rf"lifecycle, 1 thread :\s+{NUM} ops/s", out)
    f.add(
        "Manager overhead over the fake, 1 thread",
        num(m[1]),
        "µs/op",
        f"fake alone; ratio {num(m[2]):.2f}x ({num(one[1]):.0f} ops/s)",
        "<= 50 µs/op",
    )
    eight = grab(rf"lifecycle, 8 threads:\s+{NUM} ops/s", out)
    f.add("lifecycle, 8 threads", num(eight[1]), "ops/s")
    hit = grab(rf"container_ip hit\s+:\s+{NUM} /s .*bare call\s+{NUM} /s", out)
    f.add(
        "container_ip cache hit",
        num(hit[1]),
        "/s",
        f"bare attribute read {num(hit[2]):,.0f} /s",
        ">= 1,000,000 /s",
    )
    rss = grab(rf"RSS with 1,000 started bots: {NUM} MB above an empty interpreter \({NUM} MB", out)
    f.add(
        "Manager RSS with 1,000 started bots (fake)",
        num(rss[1]),
        "MB",
        f"empty interpreter {num(rss[2]):.1f} MB",
        "<= 50 MB",
    )


def parse_data(out: str, f: Figures) -> None:
    for what, tool in (("export", "tar czf"), ("import", "tar xzf")):
        m = grab(rf"{what} {NUM} MB: ours\s+{NUM} MB/s, {tool}\s+{NUM} MB/s, ratio {NUM}x", out)
        f.add(
            f"/data {what} of {num(m[1]):.0f} MB, speed vs {tool}",
            num(m[4]),
            "x",
            f"{tool} {num(m[3]):.0f} MB/s (ours {num(m[2]):.0f} MB/s)",
            ">= 0.8x",
        )
    raw = grab(rf"write_raw 64 MB:\s+{NUM} MB/s; read_raw 64 MB:\s+{NUM} MB/s", out)
    f.add("write_raw 64 MB over loopback", num(raw[1]), "MB/s", "", ">= 200 MB/s")
    f.add("read_raw 64 MB over loopback", num(raw[2]), "MB/s", "", ">= 200 MB/s")
    lat = grab(rf"exec\('true'\) round trip: p50 {NUM} ms, p99 {NUM} ms", out)
    f.add("exec('true') round trip on the fake, p50", num(lat[1]), "ms")
    f.add("exec('true') round trip on the fake, p99", num(lat[2]), "ms")


def parse_store(out: str, f: Figures) -> None:
    for name in ("sqlite", "postgres"):
        m = grab(
            rf"{name}: record_snapshot .*list_versions\(([0-9]+)\) median {NUM} ms p95 {NUM} ms"
            rf" \| get_version median {NUM} ms",
            out,
        )
        f.add(
            f"list_versions of {m[1]} versions, {name}",
            num(m[2]),
            "ms",
            f"p95 {num(m[3]):.1f} ms; get_version {num(m[4]):.2f} ms",
            "< 20 ms",
        )
    for name, m in zip(
        ("sqlite", "postgres"),
        re.findall(rf"Manager\.list_versions .* median {NUM} ms", out),
        strict=False,
    ):
        f.add(f"Manager.list_versions of the same, {name}", num(m), "ms", "", "< 20 ms")


def parse_versions(out: str, f: Figures) -> None:
    for name in ("sqlite", "postgresql"):
        m = grab(
            rf"{name}: create_version median {NUM} ms p95 {NUM} ms \| "
            rf"rollback_version median {NUM} ms",
            out,
        )
        f.add(f"create_version on the fake, {name}", num(m[1]), "ms", f"p95 {num(m[2]):.2f} ms")
        f.add(f"rollback_version on the fake, {name}", num(m[3]), "ms")


# --- the benchmarks -----------------------------------------------------------------------


@dataclass
class Bench:
    """One benchmark: how to run it and how its figures are read."""

    name: str
    args: list[str] = field(default_factory=list)
    root: bool = False
    parse: Parser | None = None  # None: it writes --json itself
    timeout: float = 1800.0

    @property
    def script(self) -> Path:
        return HERE / f"bench_{self.name}.py"


BENCHES = [
    Bench("containerd", root=True, parse=parse_containerd),
    Bench("pull", ["--layers", "5", "--layer-mb", "11"], root=True, parse=parse_pull),
    Bench("e2e", root=True, parse=parse_e2e),
    Bench("manager", parse=parse_manager),
    Bench("data", parse=parse_data),
    Bench("store", root=True, parse=parse_store),
    Bench("versions", root=True, parse=parse_versions),
    Bench("density", ["--containerd", "--shim-groups", "1"], root=True),
    Bench("scale", ["--rounds", "3"], root=True),
]


def run(bench: Bench, python: str) -> str:
    """Run one benchmark; "" on success, else why its figures were kept."""
    if bench.root and os.geteuid() != 0:
        return "needs root"
    RESULTS.mkdir(exist_ok=True)
    out_json = RESULTS / f"{bench.name}.json"
    argv = [python, str(bench.script), *bench.args]
    if bench.parse is None:
        argv += ["--json", str(out_json) + ".new"]
    print(f"== {bench.name}: {' '.join(argv[1:])}", flush=True)
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=bench.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {bench.timeout:.0f} s"
    print(proc.stdout, end="", flush=True)
    (RESULTS / f"{bench.name}.txt").write_text(proc.stdout + proc.stderr[-4000:])
    if proc.returncode != 0:
        return f"exit status {proc.returncode}: {proc.stderr.strip()[-300:]}"
    if bench.parse is None:
        Path(str(out_json) + ".new").replace(out_json)
        return ""
    figures = Figures(bench.name)
    try:
        bench.parse(proc.stdout, figures)
    except LookupError as exc:
        return f"its output no longer parses: {exc}"
    figures.write(str(out_json))
    return ""


# --- the table ---------------------------------------------------------------------------


def fmt_value(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 10_000:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"


def table() -> str:
    lines = [
        "| Benchmark | Figure | Anchor (same run) | Target | Last measured | When, load |",
        "|---|---|---|---|---|---|",
    ]
    for bench in BENCHES:
        path = RESULTS / f"{bench.name}.json"
        if not path.exists():
            lines.append(f"| bench_{bench.name} | (not run yet) | | | | |")
            continue
        doc = json.loads(path.read_text())
        when = f"{doc.get('measured', '?')}, {doc.get('host', '')}".replace("|", "/")
        for r in doc["figures"]:
            cells = [
                f"bench_{bench.name}",
                r["figure"],
                r.get("anchor", ""),
                r.get("target", ""),
                fmt_value(r["value"], r["unit"]),
                when,
            ]
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def rewrite_readme() -> None:
    text = README.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{START}\n{table()}\n{END}{tail}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--only", help="comma-separated names (e.g. density,scale)")
    p.add_argument("--table", action="store_true", help="only rewrite the table")
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args()
    failed: dict[str, str] = {}
    if not args.table:
        wanted = set(args.only.split(",")) if args.only else None
        began = time.monotonic()
        for bench in BENCHES:
            if wanted is None or bench.name in wanted:
                why = run(bench, args.python)
                if why:
                    failed[bench.name] = why
        print(f"ran in {time.monotonic() - began:.0f} s")
    rewrite_readme()
    for name, why in failed.items():
        print(f"bench_{name}: figures kept from its last run ({why})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

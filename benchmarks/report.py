"""Write a run's results: ``latest.json`` (everything), ``latest.md`` (tables), ``latest.png``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["markdown", "plot", "write"]

_CONTENDERS = ("aiotwinne", "aiohttp", "aiohttp+model", "httpx")
_LABELS = {
    "aiotwinne": "aiotwinne",
    "aiohttp": "raw aiohttp -> dict",
    "aiohttp+model": "raw aiohttp + model",
    "httpx": "httpx + model",
}


def _replace(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file, so a failed run never leaves half a result."""
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)


def write(results: dict[str, Any], out_dir: Path) -> None:
    """Write the three result files into *out_dir* (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def text_writer(text: str) -> Callable[[Path], None]:
        def write_text(path: Path) -> None:
            path.write_text(text, encoding="utf-8")

        return write_text

    _replace(out_dir / "latest.json", text_writer(json.dumps(results, indent=2) + "\n"))
    _replace(out_dir / "latest.md", text_writer(markdown(results)))
    if "client_overhead" in results:
        _replace(out_dir / "latest.png", lambda p: plot(results, p))


def _spread(summary: dict[str, float], digits: int = 0) -> str:
    def fmt(value: float) -> str:
        return f"{value:,.{digits}f}"

    return f"{fmt(summary['median'])} ({fmt(summary['min'])}-{fmt(summary['max'])})"


def _ratio(summary: dict[str, float]) -> str:
    return f"**{summary['median']:.2f}** ({summary['min']:.2f}-{summary['max']:.2f})"


def _environment(meta: dict[str, Any]) -> list[str]:
    libraries = ", ".join(f"{k} {v}" for k, v in meta["libraries"].items() if v)
    static = meta["upstreams"]["static"]
    emulator = meta["upstreams"]["emulator"]
    lines = [
        "| | |",
        "|---|---|",
        f"| date | {meta['date']} |",
        f"| command | `{meta['command']}` (settings: {meta['settings']['name']}) |",
        f"| commit | {meta.get('git_commit') or 'unknown'} |",
        f"| python | {meta['python']} on {meta['platform']} |",
        f"| cpu | {meta['cpu_model']}, {meta['cpu_count']} cores |",
        f"| client event loops | {', '.join(meta['client_loops'])} |",
        f"| libraries | {libraries} |",
        f"| upstream (benchmarks 1-3, 5) | static replay of the emulator's fast-mode answer "
        f"({static['answer_bytes']} bytes), own process on {static['loop']}: ceiling "
        f"**{static['ceiling_rps']:,.0f} req/s** ({static['ceiling_tool']}, "
        f"{static['ceiling_connections']} connections) |",
        f"| upstream (benchmarks 4, 7) | TwinneEmulator(fast=True), own process on "
        f"{emulator['loop']}: ceiling {emulator['ceiling_rps']:,.0f} req/s "
        f"({emulator['ceiling_tool']}); not on the measured path |",
        f"| duration | {meta.get('duration_seconds', '?')} s |",
        f"| load average (1/5/15 min) | start {_load(meta.get('load_average_start'))}, "
        f"end {_load(meta.get('load_average_end'))} ({meta['cpu_count']} cores) |",
    ]
    if meta.get("note"):
        lines.append(f"| note | {meta['note']} |")
    return lines


def _load(values: list[float] | None) -> str:
    return "unknown" if not values else " / ".join(f"{v:.2f}" for v in values)


def _targets(targets: list[dict[str, Any]]) -> list[str]:
    lines = ["| benchmark | target | measured | met |", "|---|---|---|---|"]
    for t in targets:
        detail = f" ({t['detail']})" if t["detail"] else ""
        mark = {True: "yes", False: "**NO**", None: "n/a"}[t["met"]]
        lines.append(f"| {t['name']} | {t['target']} | {t['value']}{detail} | {mark} |")
    return lines


def _client(section: dict[str, Any]) -> list[str]:
    lines = [
        "The headline compares `TwinneClient.get_user_info` with what a user writes by hand "
        "without aiotwinne: raw aiohttp, `json.loads(await resp.read())`, a **dict**. "
        "The breakdown adds the same hand-written code building the same `UserInfo` "
        "(`aiohttp+model`), and httpx with the model. "
        f"Median of {section['rounds']} interleaved rounds of {section['slice_seconds']} s "
        "(min-max); ratios are per round, then the median. CPU µs per call is the client "
        "process's own CPU time (median round; noise only adds time, so it is an upper "
        f"bound). Pool: {section['pool_limit']} connections for every contender.",
        "",
        *_model(section["model"]),
        "",
        *_stub(section["stub"]),
        "",
        *_breakdown(section["breakdown"]),
        "",
        "| loop | conc. | **aiotwinne / raw aiohttp -> dict** | CPU µs/call: dict "
        "/ + model / aiotwinne | CPU ratio (per round) | aiohttp+model / aiohttp "
        "| aiotwinne / aiohttp+model | upstream CPU |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in section["points"]:
        cpu = p["cpu_us_per_op"]
        cpus = " / ".join(f"{cpu[c]['median']:.0f}" for c in ("aiohttp", "aiohttp+model"))
        share = p.get("upstream_cpu_share")
        lines.append(
            f"| {p['loop']} | {p['concurrency']} | {_ratio(p['ratios']['aiotwinne/aiohttp'])} "
            f"| {cpus} / {cpu['aiotwinne']['median']:.0f} "
            f"| {_ratio(p['cpu_ratios']['aiotwinne/aiohttp'])} "
            f"| {_ratio(p['ratios']['aiohttp+model/aiohttp'])} "
            f"| {_ratio(p['ratios']['aiotwinne/aiohttp+model'])} "
            f"| {'' if share is None else f'{share:.0%}'} |"
        )
    lines += [
        "",
        "Calls per second, and httpx:",
        "",
        "| loop | conc. | aiotwinne | raw aiohttp -> dict | raw aiohttp + model "
        "| httpx + model | aiotwinne / httpx | CPU µs/call, best round "
        "(tw / dict / +model / httpx) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in section["points"]:
        rate = p["per_second"]
        best = " / ".join(f"{p['cpu_us_per_op'][c]['min']:.0f}" for c in _CONTENDERS)
        lines.append(
            f"| {p['loop']} | {p['concurrency']} "
            + "".join(f"| {_spread(rate[c])} " for c in _CONTENDERS)
            + f"| {_ratio(p['ratios']['aiotwinne/httpx'])} | {best} |"
        )
    return lines


def _model(model: dict[str, Any]) -> list[str]:
    return [
        f"The model alone (best of {model['repeat']} runs of {model['number']:,} calls, "
        f"the recorded {model['answer_bytes']}-byte answer): `user_info_from_wire` "
        f"**{model['user_info_from_wire_us']:.2f} µs** per profile "
        f"(`json.loads` of the body: {model['json_loads_us']:.2f} µs).",
    ]


def _breakdown(breakdown: dict[str, Any]) -> list[str]:
    figures = breakdown["cpu_us_per_call"]
    reference = figures["dict"]["best"]
    lines = [
        "Where a real call's extra time goes (`python -m benchmarks.breakdown`: each "
        "contender adds one thing to the hand-written code giving a dict; "
        f"{breakdown['loop']}, concurrency {breakdown['concurrency']}, CPU µs per call in "
        f"the best (median) of {breakdown['rounds']} rounds of {breakdown['calls']:,} calls):",
        "",
        "| contender | CPU µs/call | added to the dict |",
        "|---|--:|--:|",
    ]
    for name, value in figures.items():
        lines.append(
            f"| {name} | {value['best']:.1f} ({value['median']:.1f}) "
            f"| {value['best'] - reference:+.1f} |"
        )
    return lines


def _stub(stub: dict[str, Any]) -> list[str]:
    best = stub["cpu_us_per_call_best"]
    return [
        f"The client's own cost, network taken out (a stub session answering from memory, "
        f"best of {stub['rounds']} rounds of {stub['calls']:,} calls): by hand to a dict "
        f"{best['aiohttp']:.1f} µs/call, by hand with the model {best['aiohttp+model']:.1f} "
        f"(the model in context: +{stub['model_us_per_call']:.1f} µs), aiotwinne "
        f"{best['aiotwinne']:.1f}: the client layer adds **+{stub['added_us_per_call']:.1f} µs "
        f"per call** (+{stub['added_over_dict_us_per_call']:.1f} µs over the dict).",
    ]


def _bulk(section: dict[str, Any]) -> list[str]:
    t = section["throughput"]
    rate = t["per_second"]
    lines = [
        f"Throughput: {t['count']:,} tokens at concurrency {t['concurrency']}, interleaved "
        "with the client loop doing the same job (default event loop).",
        "",
        "| | profiles/s | CPU µs/profile (best round) |",
        "|---|--:|--:|",
    ]
    for name in rate:
        cpu = t["cpu_us_per_op"][name]["min"]
        lines.append(f"| {name} | {_spread(rate[name])} | {cpu:.0f} |")
    ratio = t["ratios"]["fetch_profiles/get_user_info"]
    cpu_ratio = t["cpu_best_ratios"]["fetch_profiles/get_user_info"]
    lines += [
        f"| **ratio** | {_ratio(ratio)} | {cpu_ratio:.2f} |",
        "",
        "Memory: one child process per size, tokens from a generator, results dropped.",
        "",
        "| tokens | profiles/s | RSS before (MiB) | peak during fetch (MiB) | ru_maxrss (MiB) |",
        "|--:|--:|--:|--:|--:|",
    ]
    for m in section["memory"]:
        lines.append(
            f"| {m['count']:,} | {m['profiles_per_second']:,.0f} "
            f"| {m['rss_before_kib'] / 1024:.1f} | {m['rss_peak_during_kib'] / 1024:.1f} "
            f"| {m['maxrss_kib'] / 1024:.1f} |"
        )
    lines += [
        "",
        f"Peak RSS growth: **{section['rss_growth_mib']} MiB** (ru_maxrss), "
        f"{section['rss_growth_during_mib']} MiB (peak sampled during the fetch).",
    ]
    return lines


def _middleware(section: dict[str, Any]) -> list[str]:
    rps = section["requests_per_second"]
    cpu = section["server_cpu_us_per_request"]
    lines = [
        f"Requests/s of `GET /page` from {section['tool']} in its own process, "
        f"{section['connections']} connections, {section['rounds']} interleaved rounds of "
        f"{section['slice_seconds']} s; each site is one process on {section['server_loop']}. "
        f"Every request carries the cookie of a real logged-in session "
        f"({section['cookie_bytes']} bytes). `session` and `guarded` use "
        "`aiotwinne.web.cookie_storage()` (each cookie value decrypted once); "
        "`session-plain` is aiohttp-session's own `EncryptedCookieStorage` (decrypted on "
        "every request), for reference.",
        "",
        "| site | requests/s | server CPU µs/request (best round) |",
        "|---|--:|--:|",
    ]
    for name in rps:
        lines.append(f"| {name} | {_spread(rps[name])} | {cpu[name]['min']:.0f} |")
    lines += ["", "| ratio | requests/s | server CPU (best rounds) |", "|---|--:|--:|"]
    for key, summary in section["ratios"].items():
        best = section["cpu_best_ratios"][key]
        lines.append(f"| {key} | {_ratio(summary)} | {best:.2f} |")
    lines += [
        "",
        f"Upstream calls while loaded: {section['upstream_calls_during_load']}.",
    ]
    return lines


def _coalescing(section: dict[str, Any]) -> list[str]:
    added = section["burst_added_ms"]
    cold = section["bursts"]
    lines = [
        f"{section['requests']:,} concurrent requests with one new Bearer token, "
        f"{section['rounds']} rounds (each against a warm burst of the same size).",
        "",
        f"- upstream calls per burst: **{section['upstream_calls']}**",
        "- added latency, cold minus warm burst, median over rounds (min-max), ms: "
        + ", ".join(f"{k} {_spread(v, 1)}" for k, v in added.items()),
        f"- cold burst latency, ms (first round): {cold[0]['cold_ms']}",
        f"- one request alone: new token {section['single_cold_ms']['p50']} ms, cached "
        f"{section['single_warm_ms']['p50']} ms (medians): **+{section['single_added_ms']} ms**; "
        f"a direct `get_user_info` takes {section['direct_call_ms']} ms",
    ]
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The run as Markdown: environment, targets, then one table per benchmark."""
    meta = results["meta"]
    lines = [f"# aiotwinne benchmarks ({meta['date'][:10]})", "", *_environment(meta), ""]
    lines += ["## Targets", "", *_targets(results["targets"]), ""]
    for name, error in results.get("errors", {}).items():
        lines += [f"**Benchmark {name} failed:** `{error}`", ""]
    sections = (
        (
            "client_overhead",
            "1-3. get_user_info vs raw aiohttp (a dict): the model, the client layer, httpx",
            _client,
        ),
        ("middleware", "4. Middleware: the login guard under load", _middleware),
        ("bulk", "5. Bulk: fetch_profiles", _bulk),
        ("coalescing", "7. Bearer coalescing", _coalescing),
    )
    for key, title, render in sections:
        if key in results:
            lines += [f"## {title}", "", *render(results[key]), ""]
    return "\n".join(lines).rstrip() + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Throughput against concurrency, one line per contender, one panel per event loop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results["client_overhead"]["points"]
    loops = list(dict.fromkeys(p["loop"] for p in points))
    figure, axes = plt.subplots(
        1, len(loops), figsize=(6 * len(loops), 4.5), sharey=True, squeeze=False
    )
    for axis, loop in zip(axes[0], loops, strict=True):
        mine = [p for p in points if p["loop"] == loop]
        xs = [p["concurrency"] for p in mine]
        for name in _CONTENDERS:
            stats = [p["per_second"][name] for p in mine]
            medians = [s["median"] for s in stats]
            errors = [
                [m - s["min"] for m, s in zip(medians, stats, strict=True)],
                [s["max"] - m for m, s in zip(medians, stats, strict=True)],
            ]
            axis.errorbar(xs, medians, yerr=errors, marker="o", capsize=3, label=_LABELS[name])
        axis.set_xscale("log", base=2)
        axis.set_xticks(xs, [str(x) for x in xs])
        axis.set_xlabel("concurrency")
        axis.set_title(f"event loop: {loop}")
        axis.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("get_user_info calls/s (median, min-max)")
    axes[0][0].legend()
    static = results["meta"]["upstreams"]["static"]
    figure.suptitle(
        "get_user_info: aiotwinne vs raw aiohttp and httpx "
        f"({results['meta']['cpu_count']} cores; "
        f"upstream ceiling {static['ceiling_rps']:,.0f} req/s)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)

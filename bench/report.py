"""Formats the results of bench/run.py as one Markdown table (plus header and notes).

Bars are the issue's (issue 7) and apply to ferrotel; each is marked met / not met. A benchmark
reports: nothing here fails the run.
"""

from __future__ import annotations

import math

NO, FT, UP = "no agent", "ferrotel", "pure-Python"
MET, NOT_MET = "met", "**not met**"


def _f(value, digits=1):
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}"


def _delta(a, b, unit, digits=1):
    """b relative to a: '+x unit (×r)'."""
    if a is None or b is None:
        return "—"
    ratio = f" (×{b / a:.2f})" if a else ""
    return f"{b - a:+,.{digits}f} {unit}{ratio}"


def _overhead(base, over):
    """A paired overhead: '+x µs (×r)' with r relative to the baseline median."""
    if base is None or over is None:
        return "—"
    return f"{over:+,.1f} µs (×{(base + over) / base:.2f})"


def _met(ok) -> str:
    if ok is None:
        return "—"
    return MET if ok else NOT_MET


def _spans_cell(sent, received, ok=None) -> str:
    if ok is None:
        ok = sent == received
    return f"{received:,} / {sent:,}" + ("" if ok else " ✗")


def _inprocess_rows(ip) -> list[list[str]]:
    rows = []
    for route, per in ip["routes"].items():
        none, ft, up = (per.get(n, {}).get("median_us") for n in (NO, FT, UP))
        ft_over = per.get(FT, {}).get("overhead_us")
        up_over = per.get(UP, {}).get("overhead_us")
        if ft_over is not None and up_over is not None:
            factor = math.inf if ft_over <= 0 else up_over / ft_over
        else:
            factor = None
        hello = route == "/"
        ok = None
        if hello and ft_over is not None:
            ok = ft_over <= 2.0 and (factor is not None and factor >= 60)
        rows.append([
            f"1. in-process `{route}` (µs/request, median of {ip['settings']['rounds']} rounds)",
            _f(none), _f(ft), _f(up),
            _overhead(none, ft_over), _overhead(none, up_over),
            ("∞ (no measurable overhead)" if factor == math.inf else f"{_f(factor)}×") if factor is not None else "—",
            "overhead ≤ 2 µs and ≥ 60× less than pure-Python" if hello else "(bar is for `/`)",
            _met(ok),
        ])
    paired = ip.get("paired")
    if paired:
        for route in ip["routes"]:
            p = paired.get(route)
            if not p:
                continue
            up_over = ip["routes"][route].get(UP, {}).get("overhead_us")
            factor = None if up_over is None else (math.inf if p["overhead_us"] <= 0 else up_over / p["overhead_us"])
            hello = route == "/"
            rows.append([
                f"1. in-process `{route}`, paired in one process: hooked vs unwrapped app, alternating "
                f"(µs of request-thread CPU, median of {p['pairs']} pairs; quartiles {_f(p['q1_us'])}–{_f(p['q3_us'])})",
                _f(p["raw_us"]), _f(p["hooked_us"]), "",
                f"+{_f(p['overhead_us'])} µs", "",
                ("∞" if factor == math.inf else f"{_f(factor)}×") if factor is not None else "—",
                "overhead ≤ 2 µs and ≥ 60× less than pure-Python" if hello else "(bar is for `/`)",
                _met(p["overhead_us"] <= 2.0 and factor is not None and factor >= 60) if hello else "—",
            ])
    ratio = ip.get("paired_ratio")
    if ratio:
        for route in ip["routes"]:
            p = ratio.get(route)
            if not p:
                continue
            hello = route == "/"
            rows.append([
                f"1. in-process `{route}`, paired, `parentbased_traceidratio` 0.01 with metrics over OTLP "
                f"(µs of request-thread CPU, median of {p['pairs']} pairs; quartiles {_f(p['q1_us'])}–{_f(p['q3_us'])})",
                _f(p["raw_us"]), _f(p["hooked_us"]), "",
                f"+{_f(p['overhead_us'])} µs", "", "",
                "overhead ≤ 1 µs" if hello else "(bar is for `/`)",
                _met(p["overhead_us"] <= 1.0) if hello else "—",
            ])
        r = ratio["requests"]
        rows.append([
            "1. in-process, ratio 0.01: requests counted by `http.server.request.duration` / sent",
            "—", _spans_cell(r["sent"], r["counted"]), "", "", "", "",
            "metrics exact (every request counted)", _met(r["sent"] == r["counted"] and r["sent"] > 0),
        ])
    spans = ip["spans"]
    if paired:
        spans = {**spans, FT: {"sent": spans[FT]["sent"] + paired["spans"]["sent"],
                               "received": spans[FT]["received"] + paired["spans"]["received"]}}
    ft_ok = spans[FT]["sent"] == spans[FT]["received"] and spans[FT]["sent"] > 0
    rows.append([
        "1. in-process spans received / requests sent",
        "—", _spans_cell(spans[FT]["sent"], spans[FT]["received"]),
        _spans_cell(spans[UP]["sent"], spans[UP]["received"]),
        "", "", "", "every span exported", _met(ft_ok),
    ])
    return rows


def _server_rows(sv) -> list[list[str]]:
    if "skipped" in sv:
        return [["2. gunicorn + wrk", f"skipped: {sv['skipped']}", "", "", "", "", "", "", ""]]
    cf = sv["configs"]
    m = {n: cf[n]["main"] if n in cf else {} for n in (NO, FT, UP)}
    rps = [m[n].get("rps") for n in (NO, FT, UP)]
    pct = [None if rps[0] in (None, 0) or r is None else r / rps[0] * 100 for r in rps]
    rows = [[
        f"2. gunicorn 1 sync worker, wrk -c{sv['settings']['connections']} {sv['settings']['seconds']:g} s: requests/s",
        _f(rps[0], 0), _f(rps[1], 0), _f(rps[2], 0),
        f"{_f(pct[1])}%" if pct[1] is not None else "—", f"{_f(pct[2])}%" if pct[2] is not None else "—", "",
        "≥ 97% of no agent", _met(pct[1] >= 97.0 if pct[1] is not None else None),
    ]]
    for p in ("p50", "p99"):
        v = [m[n].get(f"{p}_us") for n in (NO, FT, UP)]
        rows.append([f"2. gunicorn latency {p} (µs)", _f(v[0], 0), _f(v[1], 0), _f(v[2], 0),
                     _delta(v[0], v[1], "µs", 0), _delta(v[0], v[2], "µs", 0), "", "", ""])
    cells = []
    for n in (FT, UP):
        c = cf.get(n)
        if c is None:
            cells.append("—")
            continue
        sent = f"{c['sent_min']:,}" + (f"–{c['sent_max']:,}" if c["sent_max"] != c["sent_min"] else "")
        cells.append(f"{c['received']:,} / {sent}" + ("" if c["spans_ok"] else " ✗"))
    rows.append(["2. gunicorn spans received / requests sent", "—", cells[0], cells[1], "", "", "",
                 "every span exported", _met(cf[FT]["spans_ok"] if FT in cf else None)])
    return rows


def _startup_rows(st) -> list[list[str]]:
    rows = []
    reps = st["settings"]["reps"]
    for script, per in st["summary"].items():
        w = [per.get(n, {}).get("wall_ms") for n in (NO, FT, UP)]
        r = [per.get(n, {}).get("rss_mib") for n in (NO, FT, UP)]
        dw = None if None in (w[0], w[1]) else w[1] - w[0]
        dr = None if None in (r[0], r[1]) else r[1] - r[0]
        rows.append([f"3. start-up `python -c '{script}'`: wall (ms, median of {reps})",
                     _f(w[0]), _f(w[1]), _f(w[2]), _delta(w[0], w[1], "ms"), _delta(w[0], w[2], "ms"), "",
                     "≤ 10 ms above no agent", _met(dw <= 10.0 if dw is not None else None)])
        rows.append([f"3. start-up `python -c '{script}'`: peak RSS (MiB)",
                     _f(r[0]), _f(r[1]), _f(r[2]), _delta(r[0], r[1], "MiB"), _delta(r[0], r[2], "MiB"), "",
                     "≤ 5 MiB above no agent", _met(dr <= 5.0 if dr is not None else None)])
    return rows


def _pipeline_rows(pl) -> list[list[str]]:
    if "error" in pl:
        return [["4. pipeline (Rust)", "", "error", "", "", "", "", "", "—"]]
    return [
        ["4. export pipeline alone (processors + RED metrics + batching + OTLP encoding): spans/s on one core",
         "", f"{pl['spans_per_s']:,}", "", "", "", "", "≥ 500,000", _met(pl["spans_per_s"] >= 500_000)],
        ["4. background CPU per exported span (ns)", "", f"{pl['ns_per_span']:,}", "", "", "", "", "≤ 2,000 ns",
         _met(pl["ns_per_span"] <= 2000)],
    ]


HEADER = ["measurement", NO, FT, UP, "ferrotel vs no agent", "pure-Python vs no agent",
          "pure-Python overhead ÷ ferrotel overhead", "bar (ferrotel)", "met?"]


def render(results: dict) -> str:
    meta = results["meta"]
    v = meta["versions"]
    base, up = v.get("base", {}), v.get("upstream", {})
    lines = [
        "# ferrotel benchmarks",
        "",
        f"Taken {meta['date']} on {meta['nproc']} × {meta['cpu']} (nproc {meta['nproc']}), Linux {meta['kernel']}, "
        f"CPython {base.get('python', '?')}; load average at start {meta['loadavg_start'][0]:.2f}, "
        f"at end {meta.get('loadavg_end', [0])[0]:.2f}; whole run {meta.get('elapsed_s', '?')} s.",
        f"ferrotel {meta['commit']}{' (uncommitted changes)' if meta['dirty'] else ''}; "
        f"Flask {base.get('flask', '?')}, Werkzeug {base.get('werkzeug', '?')}, gunicorn {base.get('gunicorn', '?')} "
        f"(same in both venvs: {'yes' if all(base.get(k) == up.get(k) for k in ('flask', 'werkzeug', 'gunicorn')) else 'NO'}); "
        f"pure-Python agent: opentelemetry-distro {up.get('opentelemetry-distro', '?')}, "
        f"sdk {up.get('opentelemetry-sdk', '?')}, instrumentation-flask {up.get('opentelemetry-instrumentation-flask', '?')}, "
        f"exporter-otlp-proto-http {up.get('opentelemetry-exporter-otlp-proto-http', '?')}.",
        "All three export OTLP/HTTP protobuf to the same local receiver; agents injected through PYTHONPATH "
        "as the OpenTelemetry Operator does.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    rows = []
    if "inprocess" in results:
        rows += _inprocess_rows(results["inprocess"])
    if "server" in results:
        rows += _server_rows(results["server"])
    if "startup" in results:
        rows += _startup_rows(results["startup"])
    if "pipeline" in results:
        rows += _pipeline_rows(results["pipeline"])
    lines += ["| " + " | ".join(r) + " |" for r in rows]

    notes = []
    if "inprocess" in results:
        ip = results["inprocess"]
        s = ip["settings"]
        spread = "; ".join(
            f"`{route}` " + ", ".join(f"{n} {_f(x['min_us'])}–{_f(x['max_us'])}" for n, x in per.items())
            for route, per in ip["routes"].items())
        notes.append(f"In-process: each configuration in its own process, {s['rounds']} rounds (order rotated) × "
                     f"{s['requests_per_route_per_round']:,} timed requests per route after {s['warmup']} warm-up; µs/request "
                     f"is the median of the rounds (each round: the median of 5 chunks), the overhead the median of the "
                     f"per-round differences to no agent; "
                     f"per-round medians range (µs): {spread}.")
        for n, ok in ip["agent_loaded"].items():
            if not ok:
                notes.append(f"**In-process: the {n} configuration did not load its agent.**")
    if "server" in results and "configs" in results["server"]:
        s = results["server"]["settings"]
        notes.append(f"gunicorn: tests/app/app.py, route `/`, one server per configuration, `wrk -t1 "
                     f"-c{s['connections']} --latency`: {s['warmup_seconds']:g} s warm-up each, then {s['rounds']} rounds "
                     f"(order rotated) of {s['slice_seconds']:g} s each; requests/s over all rounds, latency percentiles "
                     f"the median of the rounds'; spans counted after a graceful stop (wrk does not count the up to "
                     f"{s['connections']} requests in flight when each run stops).")
    if "startup" in results:
        st = results["startup"]
        alt = st["summary"].get("import flask", {}).get("no agent (upstream venv)")
        if alt:
            base = st["summary"]["import flask"].get(NO, {})
            notes.append(f"Start-up: the pure-Python agent runs in its own venv; `import flask` without the agent in "
                         f"that venv: {_f(alt['wall_ms'])} ms, {_f(alt['rss_mib'])} MiB (base venv: "
                         f"{_f(base.get('wall_ms'))} ms, {_f(base.get('rss_mib'))} MiB).")
        bad = [k for k, ok in st["agent_ok"].items() if not ok]
        if bad:
            notes.append("**Start-up: agent not loaded as expected in: " + ", ".join(bad) + ".**")
    if results.get("receiver_errors"):
        notes.append(f"**Receiver rejected {len(results['receiver_errors'])} export requests:** "
                     f"{results['receiver_errors'][:3]}")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"

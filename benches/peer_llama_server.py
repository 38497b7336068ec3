#!/usr/bin/env python3
"""Peer benchmark: llama.cpp's llama-server on the same machine, model and keystrokes.

Replays the same cases as `benches/replay.rs` (same files, same removed span,
typed back one character at a time) against llama-server's `/infill` the way
llama.vim drives it: `input_prefix` = up to 256 lines above the cursor line,
`prompt` = the cursor line up to the cursor (llama-server puts it after the
FIM middle token), `input_suffix` = the rest of the line and up to 64 lines
below, `cache_prompt: true`, `n_predict` 128, `t_max_predict_ms` 1000, its
samplers; the server started as llama.vim's README says (`--cache-reuse 256
-ub 512 -b 1024`). Each keystroke waits for its answer (like the "on" row of
replay.rs), so the two are measured the same way. llama.vim does not stream:
there is no first-text time for the peer. With `--prefix-only` it sends the
prefix to `/completion` instead (for models without FIM tokens).

llama-server is not part of slm-ls and is not committed; build it from any
llama.cpp checkout (the llama-cpp-python sdist on PyPI vendors one):
  cmake -B build -S llama.cpp -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
  cmake --build build --target llama-server -j
Usage: benches/peer_llama_server.py --server build/bin/llama-server [--model PATH] [--files N]
       benches/peer_llama_server.py --server ... --quality samples.jsonl   (from QUALITY_DUMP=samples.jsonl cargo bench --bench quality)
"""
import argparse, glob, json, os, socket, subprocess, sys, sysconfig, time, urllib.request


def cases(per_lang):
    lib = sysconfig.get_paths()["stdlib"]
    out = []
    for f in ["textwrap.py", "shlex.py", "json/decoder.py", "argparse.py", "csv.py"][:per_lang]:
        out += make_case(f, open(os.path.join(lib, f), encoding="utf-8").read())
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    for krate, rel in [("ropey", "src/rope.rs"), ("serde_json", "src/de.rs"), ("tokio", "src/sync/mutex.rs")][:per_lang]:
        for d in sorted(glob.glob(f"{home}/registry/src/*/{krate}-[0-9]*")):
            p = os.path.join(d, rel)
            if os.path.exists(p):
                out += make_case(f"{krate}/{rel}", open(p, encoding="utf-8").read())
                break
    return out


def make_case(name, text, min_chars=5000):
    """Same rule as replay.rs::make_case."""
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        code = body.lstrip(" \t")
        indent = len(body) - len(code)
        if offset >= min_chars and 24 <= len(code) < 60 and not code.startswith("#") and not code.startswith("//"):
            keep = indent + 4
            span = body[keep:]
            cursor = offset + keep
            return [(name, text[:cursor] + text[cursor + len(span):], cursor, span)]
        offset += len(line)
    return []


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def request(port, text, cursor, prefix_only):
    before, after = text[:cursor], text[cursor:]
    above = before.split("\n")
    line_prefix = above.pop()
    below = after.split("\n")
    t = time.perf_counter()
    if prefix_only:
        prefix = "\n".join(above[-256:] + [line_prefix])
        r = post(port, "/completion", {"prompt": prefix, "n_predict": 64, "cache_prompt": True, "stop": ["\n"],
                                       "temperature": 0, "top_k": 1, "samplers": ["top_k"], "t_max_predict_ms": 1500})
    else:
        # llama.vim's request (autoload/llama.vim, llama#fim), ring-buffer extras empty: one file.
        r = post(port, "/infill", {
            "input_prefix": "".join(l + "\n" for l in above[-256:]),
            "prompt": line_prefix,
            "input_suffix": "\n".join(below[:65]),
            "input_extra": [],
            "n_predict": 128, "stop": [], "n_indent": len(line_prefix) - len(line_prefix.lstrip(" \t")),
            "top_k": 40, "top_p": 0.90, "samplers": ["top_k", "top_p", "infill"],
            "stream": False, "cache_prompt": True, "t_max_prompt_ms": 500, "t_max_predict_ms": 1000,
        })
    return (time.perf_counter() - t) * 1000, r


def wilson(k, n):
    if n == 0:
        return (0.0, 0.0)
    z, p = 1.96, k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / d
    return (100 * max(0, c - h), 100 * min(1, c + h))


def pct_ci(k, n):
    lo, hi = wilson(k, n)
    return f"{100 * k / max(1, n):.1f}% [{lo:.1f}, {hi:.1f}]"


def ratio_ci(a, b):
    """Paired bootstrap of sum(a)/sum(b) (2000 resamples, fixed seed)."""
    import random
    if sum(b) == 0:
        return "—"
    rng = random.Random(1234)
    n = len(a)
    rs = []
    for _ in range(2000):
        idx = [rng.randrange(n) for _ in range(n)]
        d = sum(b[i] for i in idx)
        rs.append(sum(a[i] for i in idx) / d if d else float("inf"))
    rs.sort()
    return f"{sum(a) / sum(b):.2f}× [{rs[50]:.2f}, {rs[1949]:.2f}]"


def quality(port, path, n_predict, answers=None):
    """Score llama-server's /infill on the quality bench's samples (QUALITY_DUMP):
    llama.vim's context (256 lines above, 64 below, cursor line in `prompt`),
    greedy decoding; single-line samples: the raw first line against the removed
    line (trailing spaces ignored), the bench's "exact"; block samples (n_predict
    128, as llama.vim): the removed lines matched line for line. Every slm-ls row
    in the dump is compared with the peer on the same samples (paired bootstrap)."""
    rows = [json.loads(l) for l in open(path, encoding="utf-8")]
    first = lambda t: t.split("\n")[0].rstrip()
    names = sorted(k[4:] for k in rows[0] if k.startswith("row_"))
    res = []
    for i, r in enumerate(rows):
        above = r["prefix"].split("\n")
        line_prefix = above.pop()
        below = r["suffix"].split("\n")
        block = r["kind"] == "block"
        t = time.perf_counter()
        if answers is not None:
            # --answers LOG: score this dump with answers logged earlier
            # (PEER_LOG of a run on the same samples, keyed by index).
            out = answers[i]["got"]
            assert answers[i]["expected"] == r["expected"], f"sample {i}: the log is from other samples"
        else:
            out = post(port, "/infill", {
                "input_prefix": "".join(l + "\n" for l in above[-256:]),
                "prompt": line_prefix,
                "input_suffix": "\n".join(below[:65]),
                "input_extra": [], "n_predict": 128 if block else n_predict, "cache_prompt": True,
                "temperature": 0, "top_k": 1, "samplers": ["top_k"],
            })["content"]
        ms = (time.perf_counter() - t) * 1000
        def exact(got):
            if not block:
                return first(got) == first(r["expected"])
            want, have = r["expected"].split("\n"), got.split("\n")
            return all(j < len(have) and have[j].rstrip() == w.rstrip() for j, w in enumerate(want))
        res.append({"kind": r["kind"], "lang": r["lang"], "check": r.get("check", False), "ms": ms,
                    "peer": exact(out), "empty": first(out).strip() == "",
                    **{n: exact(r["row_" + n]) for n in names}})
        if os.environ.get("PEER_LOG") and answers is None:
            with open(os.environ["PEER_LOG"], "a", encoding="utf-8") as f:
                f.write(json.dumps({"i": i, "pos": r["kind"], "lang": r["lang"], "expected": r["expected"],
                                    "got": out, "exact": exact(out)}) + "\n")
        if os.environ.get("QUALITY_VERBOSE"):
            print(f"--- {r['lang']} {r['kind']}\n  want {r['expected']!r}\n  peer {out!r}")
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(rows)}", file=sys.stderr)
    print(f"llama-server /infill on {len(rows)} quality samples (n_predict {n_predict}, 128 for blocks; greedy)")
    print("| position | samples | exact llama-server | check half | empty | ms/req | " + " | ".join(f"{n} / llama-server" for n in names) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(names))
    # With --answers the times are not this run's: no ms column.
    ms_col = lambda sel: "—" if answers is not None else f"{sum(x['ms'] for x in sel) / len(sel):.0f}"
    for kind in ["line-start", "mid-line", "block"]:
        sel = [x for x in res if x["kind"] == kind]
        if not sel:
            continue
        chk = [x for x in sel if x["check"]]
        ratios = " | ".join(ratio_ci([x[n] for x in sel], [x["peer"] for x in sel]) for n in names)
        print(f"| {kind} | {len(sel)} | {pct_ci(sum(x['peer'] for x in sel), len(sel))} | "
              f"{pct_ci(sum(x['peer'] for x in chk), len(chk))} | {sum(x['empty'] for x in sel)} | "
              f"{ms_col(sel)} | {ratios} |")
    print("\n| language | exact llama-server (single-line) |\n|---|---|")
    for lang in sorted({x["lang"] for x in res}):
        sel = [x for x in res if x["lang"] == lang and x["kind"] != "block"]
        print(f"| {lang} | {pct_ci(sum(x['peer'] for x in sel), len(sel))} |")


def pct(v, p):
    s = sorted(v)
    return s[max(1, min(len(s), int(-(-p * len(s) // 1)))) - 1] if s else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--model", default=subprocess.run(["target/release/slm-ls", "models", "path"], capture_output=True, text=True).stdout.strip())
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--prefix-only", action="store_true")
    ap.add_argument("--quality", metavar="FILE", help="score /infill on QUALITY_DUMP samples instead of the replay")
    ap.add_argument("--n-predict", type=int, default=48)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--answers", metavar="LOG", help="with --quality: no server; score the PEER_LOG of an earlier run on the same samples")
    a = ap.parse_args()
    if a.quality and a.answers:
        log = [json.loads(l) for l in open(a.answers, encoding="utf-8")]
        return quality(None, a.quality, a.n_predict, {x["i"]: x for x in log})
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    threads = str(a.threads)
    srv = subprocess.Popen([a.server, "-m", a.model, "--port", str(port), "-c", "8192", "-t", threads, "-tb", threads,
                            "--cache-reuse", "256", "-ub", "512", "-b", "1024", "-np", "1", "--no-webui"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1); break
            except Exception:
                time.sleep(0.1)
        if a.quality:
            return quality(port, a.quality, a.n_predict)
        cold, warm, cached, evaluated = [], [], [], []
        for name, text, cursor, span in cases(a.files):
            ms, r = request(port, text, cursor, a.prefix_only)
            cold.append(ms)
            for ch in span:
                text = text[:cursor] + ch + text[cursor:]
                cursor += 1
                ms, r = request(port, text, cursor, a.prefix_only)
                warm.append(ms)
                t = r.get("timings", {})
                cached.append((t.get("cache_n", 0), t.get("prompt_n", 0)))
                evaluated.append(t.get("prompt_n", 0))
        reused = sum(c for c, _ in cached) / max(1, sum(c + n for c, n in cached))
        print(f"llama-server peer: {len(cold)} files, {len(warm)} keystrokes")
        print("| peer         | cold p50 | warm p50 | warm p95 | reused | evaluated/key p50 |")
        print("|--------------|---------:|---------:|---------:|-------:|------------------:|")
        print(f"| llama-server | {pct(cold, .5):8.0f} | {pct(warm, .5):8.0f} | {pct(warm, .95):8.0f} | {100 * reused:5.1f}% | {pct(evaluated, .5):17.0f} |")
    finally:
        srv.terminate(); srv.wait()


if __name__ == "__main__":
    sys.exit(main())

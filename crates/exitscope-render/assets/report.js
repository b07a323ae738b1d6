// exitscope HTML report: renders the sections from the embedded report document.
// Every number shown comes from that document; this script only formats and arranges it
// (the differences of the --diff view are the one subtraction it does).
"use strict";
(function () {
  var DATA = JSON.parse(document.getElementById("exitscope-data").textContent);
  // The SVG namespace, taken from an element the HTML parser made (no URL in this file).
  var SVGNS = (function () { var d = document.createElement("div"); d.innerHTML = "<svg></svg>"; return d.firstChild.namespaceURI; })();

  // ---------- formatting ----------
  function fmtNs(ns) {
    if (ns === null || ns === undefined) return "–";
    var a = Math.abs(ns);
    if (a < 10000000) return (ns / 1000).toFixed(3) + " µs";
    if (a < 10000000000) return (ns / 1e6).toFixed(3) + " ms";
    return (ns / 1e9).toFixed(3) + " s";
  }
  function fmtShortNs(ns) {
    if (ns < 1000) return Math.round(ns) + " ns";
    if (ns < 1e6) return +(ns / 1000).toPrecision(3) + " µs";
    if (ns < 1e9) return +(ns / 1e6).toPrecision(3) + " ms";
    return +(ns / 1e9).toPrecision(3) + " s";
  }
  function fmtInt(n) {
    if (n === null || n === undefined) return "–";
    return Number(n).toLocaleString("en-US");
  }
  function fmtPct(part, whole) {
    if (part === null || part === undefined || !whole) return "–";
    return (100 * part / whole).toFixed(1) + "%";
  }
  function fmtDelta(ns) {
    if (ns === null || ns === undefined) return "–";
    return (ns > 0 ? "+" : ns < 0 ? "−" : "±") + fmtNs(Math.abs(ns));
  }
  function isNum(v) { return typeof v === "number"; }

  // ---------- DOM helpers ----------
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }
  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  // Ids stay unique when a section repeats (one per side of a diff): "exits", "exits-2".
  var seen = {};
  function uid(base) { seen[base] = (seen[base] || 0) + 1; return seen[base] === 1 ? base : base + "-" + seen[base]; }
  function section(id, title, note) {
    var s = el("section", { id: uid(id) }, [el("h2", { text: title })]);
    if (note) s.appendChild(el("p", { cls: "note", text: note }));
    document.getElementById("sections").appendChild(s);
    return s;
  }
  function num(v, fmt) { return el("td", { cls: "n" + (v === null || v === undefined ? " dim" : ""), text: (fmt || fmtNs)(v) }); }
  function th(text, cls, attrs) { var a = attrs || {}; a.text = text; if (cls) a.cls = cls; return el("th", a); }
  function fnCell(node, depth, toggle) {
    var td = el("td", { cls: "l fn" });
    td.style.paddingLeft = (8 + 16 * depth) + "px";
    if (toggle) td.appendChild(toggle);
    td.appendChild(document.createTextNode(node.function));
    if (node.module) td.appendChild(el("span", { cls: "mod", text: " [" + node.module + "]" }));
    if (node.interrupt) td.appendChild(el("span", { cls: "irq", text: "irq" }));
    return td;
  }

  // ---------- collapsible trees ----------
  // rows: [{depth, hasKids, tr, tw}] in pre-order. A row is shown when every ancestor is open.
  function makeCollapsible(table, rows, openDepth) {
    rows.forEach(function (r) { r.open = r.depth < openDepth; });
    function refresh() {
      var hideBelow = Infinity;
      rows.forEach(function (r) {
        if (r.depth <= hideBelow) hideBelow = Infinity;
        var visible = hideBelow === Infinity || r.depth <= hideBelow;
        r.tr.style.display = visible ? "" : "none";
        if (visible && r.hasKids && !r.open) hideBelow = r.depth;
        if (r.hasKids) r.tw.textContent = r.open ? "▾" : "▸";
      });
    }
    rows.forEach(function (r) {
      if (!r.hasKids) return;
      r.tw.addEventListener("click", function () { r.open = !r.open; refresh(); });
    });
    refresh();
    var tools = el("div", { cls: "tools" }, [
      el("button", { type: "button", text: "Expand all" }),
      el("button", { type: "button", text: "Collapse all" }),
    ]);
    tools.children[0].addEventListener("click", function () { rows.forEach(function (r) { r.open = true; }); refresh(); });
    tools.children[1].addEventListener("click", function () { rows.forEach(function (r) { r.open = r.depth < 1; }); refresh(); });
    table.parentNode.insertBefore(tools, table);
  }
  function countNodes(tree) {
    var n = 0;
    (function walk(ns) { ns.forEach(function (x) { n++; walk(x.children || []); }); })(tree);
    return n;
  }

  // ---------- histograms (log-scaled time axis) ----------
  // Every histogram has one shape: {sub_buckets, exact, bins: [{low_ns, high_ns, count}]}
  // (exitscope_analyze::histogram::HistogramJson). Bins that are not well formed are dropped
  // rather than drawn wrong; fine histograms are grouped to 4 bins per power of two for display.
  function normBins(h) {
    var bins = (h && Array.isArray(h.bins) ? h.bins : []).filter(function (b) {
      return isNum(b.low_ns) && isNum(b.high_ns) && isNum(b.count) && b.high_ns >= b.low_ns;
    });
    if (bins.length <= 48) return bins;
    var out = [];
    bins.forEach(function (b) {
      var lo = 0, hi = 1;
      if (b.low_ns > 0) {
        var base = Math.pow(2, Math.floor(Math.log2(b.low_ns)));
        var q = base < 4 ? 1 : base / 4;
        lo = base + Math.floor((b.low_ns - base) / q) * q;
        hi = lo + q;
      }
      var last = out[out.length - 1];
      if (last && last.low_ns === lo) last.count += b.count;
      else out.push({ low_ns: lo, high_ns: hi, count: b.count });
    });
    return out;
  }
  function histogram(bins, opts) {
    bins = normBins(bins);
    opts = opts || {};
    var W = opts.width || 340, H = opts.height || 120, padL = 30, padB = 18, padT = 6, padR = 8;
    var svg = svgEl("svg", { "class": "h", width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    if (!bins || !bins.length) return svg;
    var lo = bins[0].low_ns, hi = bins[bins.length - 1].high_ns, maxC = 0;
    bins.forEach(function (b) { maxC = Math.max(maxC, b.count); });
    var l0 = Math.log10(Math.max(lo, 1)), l1 = Math.log10(Math.max(hi, lo + 1));
    // Widen to at least one decade, centred, so ticks exist.
    if (l1 - l0 < 1) { var m = (l0 + l1) / 2; l0 = m - 0.5; l1 = m + 0.5; }
    var x = function (ns) { return padL + (W - padL - padR) * (Math.log10(Math.max(ns, 1)) - l0) / (l1 - l0); };
    var y = function (c) { return H - padB - (H - padB - padT) * c / maxC; };
    svg.appendChild(svgEl("line", { x1: padL, x2: W - padR, y1: H - padB, y2: H - padB }));
    // ticks at 1, 2, 5 × 10^k
    for (var e = Math.floor(l0); e <= Math.ceil(l1); e++) {
      [1, 2, 5].forEach(function (m) {
        var v = m * Math.pow(10, e), lv = Math.log10(v);
        if (lv < l0 - 1e-9 || lv > l1 + 1e-9) return;
        var px = x(v);
        svg.appendChild(svgEl("line", { x1: px, x2: px, y1: H - padB, y2: H - padB + 3 }));
        if (m !== 2 || l1 - l0 < 2) {
          var t = svgEl("text", { x: px, y: H - 4, "text-anchor": "middle" });
          t.textContent = fmtShortNs(v);
          svg.appendChild(t);
        }
      });
    }
    var yt = svgEl("text", { x: padL - 4, y: padT + 8, "text-anchor": "end" });
    yt.textContent = fmtInt(maxC);
    svg.appendChild(yt);
    var y0 = svgEl("text", { x: padL - 4, y: H - padB, "text-anchor": "end" });
    y0.textContent = "0";
    svg.appendChild(y0);
    bins.forEach(function (b) {
      var x0 = x(b.low_ns), x1 = x(b.high_ns);
      var r = svgEl("rect", { "class": "b", x: x0 + 0.5, y: y(b.count), width: Math.max(1, x1 - x0 - 1), height: H - padB - y(b.count) });
      var t = svgEl("title", {});
      t.textContent = fmtShortNs(b.low_ns) + " – " + fmtShortNs(b.high_ns) + ": " + fmtInt(b.count);
      r.appendChild(t);
      svg.appendChild(r);
    });
    return svg;
  }
  function sparkline(bins) {
    bins = normBins(bins);
    var W = 72, H = 18;
    var svg = svgEl("svg", { "class": "spark", width: W, height: H, viewBox: "0 0 " + W + " " + H });
    if (!bins || !bins.length) return svg;
    var lo = Math.log10(Math.max(bins[0].low_ns, 1)), hi = Math.log10(Math.max(bins[bins.length - 1].high_ns, 2));
    if (hi - lo < 0.5) { lo -= 0.25; hi += 0.25; }
    var maxC = 0;
    bins.forEach(function (b) { maxC = Math.max(maxC, b.count); });
    bins.forEach(function (b) {
      var x0 = W * (Math.log10(Math.max(b.low_ns, 1)) - lo) / (hi - lo);
      var x1 = W * (Math.log10(Math.max(b.high_ns, 1)) - lo) / (hi - lo);
      var h = Math.max(1, (H - 1) * b.count / maxC);
      svg.appendChild(svgEl("rect", { x: x0, y: H - h, width: Math.max(1, x1 - x0 - 0.5), height: h }));
    });
    return svg;
  }
  function histCard(title, sub, bins) {
    return el("div", { cls: "hist" }, [el("h3", { text: title }), el("div", { cls: "meta", text: sub }), histogram(bins)]);
  }
  function statLine(o, noun) {
    var parts = [fmtInt(o.count) + " " + noun + (o.count === 1 ? "" : "s")];
    if (isNum(o.p50_ns)) parts.push("p50 " + fmtNs(o.p50_ns));
    if (isNum(o.p99_ns)) parts.push("p99 " + fmtNs(o.p99_ns));
    if (isNum(o.max_ns)) parts.push("max " + fmtNs(o.max_ns));
    return parts.join(" · ");
  }

  // ---------- sections ----------
  function summary(entries) {
    var head = document.getElementById("summary");
    head.appendChild(el("h1", { text: DATA.title }));
    head.appendChild(el("p", { cls: "sub", text: entries.map(function (e) { return e.label; }).join("  vs  ") + "  ·  " + DATA.generator }));
    entries.forEach(function (e) {
      var r = e.report;
      var s = el("section", { cls: "summary" }, [el("h2", { text: entries.length > 1 ? "Summary: " + e.label : "Summary" })]);
      var cards = el("div", { cls: "cards" });
      function card(k, v, warn) { cards.appendChild(el("div", { cls: "card" }, [el("div", { cls: "k", text: k }), el("div", { cls: "v" + (warn ? " warn" : ""), text: v })])); }
      if (r.exits) card("Total exits", fmtInt(r.exits.exits));
      card("Root calls", fmtInt(r.roots));
      var tracedNs = (r.tree || []).reduce(function (a, n) { return a + (n.total_ns || 0); }, 0);
      card("Traced time", (r.tree || []).length ? fmtNs(tracedNs) : "–");
      var lost = r.lost_events || {};
      card("Lost events", fmtInt(lost.events || 0) + (lost.markers ? " (" + fmtInt(lost.markers) + (lost.markers === 1 ? " marker)" : " markers)") : ""), (lost.events || lost.markers) > 0);
      card("Incomplete calls", fmtInt((r.incomplete || {}).count || 0), ((r.incomplete || {}).count || 0) > 0);
      var dc = r.diagnostic_counts || {};
      card("Diagnostics", fmtInt(dc.errors || 0) + " err · " + fmtInt(dc.warnings || 0) + " warn", (dc.errors || 0) > 0);
      s.appendChild(cards);
      if (r.host && typeof r.host === "object") {
        var ht = el("table", { cls: "kv", id: "host" });
        Object.keys(r.host).forEach(function (k) {
          var v = r.host[k];
          ht.appendChild(el("tr", {}, [el("td", { cls: "l", text: k }), el("td", { cls: "l", text: typeof v === "object" ? JSON.stringify(v) : String(v) })]));
        });
        s.appendChild(el("div", { cls: "inputs" }, [el("h3", { text: "Host" }), ht]));
      }
      var it = el("table", { cls: "inputs-t" }, [el("tr", {}, [th("Trace", "l"), th("Format", "l"), th("Bytes"), th("Lines"), th("Records"), th("Unreadable")])]);
      (r.inputs || []).forEach(function (i) {
        it.appendChild(el("tr", {}, [el("td", { cls: "l fn", text: i.name }), el("td", { cls: "l", text: i.format }), num(i.bytes, fmtInt), num(i.lines, fmtInt), num(i.records, fmtInt), num(i.error_lines, fmtInt)]));
      });
      s.appendChild(el("div", { cls: "inputs scroll" }, [it]));
      head.appendChild(s);
    });
  }

  function callTree(r, id) {
    if (!r.tree || !r.tree.length) return;
    var s = section("tree-section", "Call tree", "Merged calling-context tree: one row per call path. Self = total minus callees; % = share of the root's total time.");
    var t = el("table", { id: id });
    t.appendChild(el("thead", {}, [el("tr", {}, [th("Function", "l"), th("Calls"), th("Mean"), th("Min"), th("p50"), th("p99"), th("Max"), th("Total"), th("Self"), th("% root", "l")])]));
    var body = el("tbody");
    var rows = [];
    (function walk(nodes, depth, rootTotal) {
      nodes.forEach(function (n) {
        var rt = depth === 0 ? n.total_ns : rootTotal;
        var kids = n.children || [];
        var tw = el("span", { cls: "tw" + (kids.length ? "" : " leaf"), text: kids.length ? "▾" : "·" });
        var pct = el("td", { cls: "l pct" });
        if (isNum(n.total_ns) && rt) {
          var bar = el("div", { cls: "bar" });
          bar.style.width = Math.min(100, 100 * n.total_ns / rt) + "%";
          pct.appendChild(bar);
        }
        pct.appendChild(el("span", { cls: "t", text: fmtPct(n.total_ns, rt) }));
        var tr = el("tr", {}, [fnCell(n, depth, tw), num(n.count, fmtInt), num(n.mean_ns), num(n.min_ns), num(n.p50_ns), num(n.p99_ns), num(n.max_ns), num(n.total_ns), num(n.self_ns), pct]);
        body.appendChild(tr);
        rows.push({ depth: depth, hasKids: kids.length > 0, tr: tr, tw: tw });
        walk(kids, depth + 1, rt);
      });
    })(r.tree || [], 0, 0);
    t.appendChild(body);
    var wrap = el("div", { cls: "scroll" }, [t]);
    s.appendChild(wrap);
    makeCollapsible(t, rows, countNodes(r.tree || []) <= 80 ? Infinity : 2);
  }

  var SOURCES = {
    kvm_exit: "counted from kvm_exit events; handling time = kvm_exit → next kvm_entry of the same vCPU",
    tracepoints: "counted from reason-specific tracepoints (kvm_cpuid, kvm_pio, ...): kvm_exit/kvm_entry did not fire, so handling time is unavailable",
    function_graph: "from the function graph's exits (see Exit phases)",
    mixed: "counted from several sources (per input: function graph, kvm_exit, or tracepoints)",
    none: "no exits"
  };
  // The one per-reason statistic (exitscope_analyze::exits::ExitsReport): counts, handling time
  // where kvm_exit/kvm_entry fired, rate and inter-arrival times where timestamps exist.
  function exitReasons(r, label) {
    var x = r.exits;
    if (!x || !Array.isArray(x.reasons) || !x.reasons.length) return;
    var handling = x.reasons.some(function (q) { return q.handling; });
    var gaps = x.reasons.some(function (q) { return q.inter_arrival || isNum(q.rate_per_s); });
    if (x.source === "function_graph" && !handling && !gaps) return;
    var res = x.timestamp_resolution_ns >= 1000 ? " Timestamps resolve whole microseconds." : "";
    var s = section("reasons-section", "Exit reasons" + (label ? ": " + label : ""), fmtInt(x.exits) + " exits, " + (SOURCES[x.source] || x.source) + "." + res);
    var t = el("table", { id: uid("reasons") });
    var pct1 = function (v) { return isNum(v) ? v.toFixed(1) + "%" : "–"; };
    var head = [th("Reason", "l"), th("Count"), th("% exits")];
    if (handling) head = head.concat([th("% time"), th("Mean"), th("Min"), th("p50"), th("p90"), th("p99"), th("Max"), th("Handling time", "l")]);
    if (gaps) head = head.concat([th("Rate (/s)"), th("Gap p50"), th("Gap mean"), th("Gap p99")]);
    head = head.concat([th("As traced", "l"), th("Touched", "l")]);
    t.appendChild(el("tr", {}, head));
    x.reasons.forEach(function (q) {
      var h = q.handling || {}, g = q.inter_arrival || {};
      var cells = [el("td", { cls: "l fn", text: q.reason }), num(q.count, fmtInt), num(q.samples_pct, pct1)];
      if (handling) cells = cells.concat([num(q.time_pct, pct1), num(h.mean_ns), num(h.min_ns), num(h.p50_ns), num(h.p90_ns), num(h.p99_ns), num(h.max_ns), el("td", { cls: "l" }, [sparkline(h.histogram)])]);
      if (gaps) cells = cells.concat([num(q.rate_per_s, function (v) { return isNum(v) ? v.toFixed(1) : "–"; }), num(g.p50_ns), num(g.mean_ns), num(g.p99_ns)]);
      var traced = (q.vendor || []).map(function (v) { return v.name + (v.count > 1 ? " ×" + fmtInt(v.count) : ""); }).join(", ");
      var keys = (q.keys || []).slice(0, 3).map(function (k) { return k.name + " ×" + fmtInt(k.count); }).join(", ");
      cells = cells.concat([el("td", { cls: "l ev", text: traced || "–" }), el("td", { cls: "l ev", text: keys || "–" })]);
      t.appendChild(el("tr", {}, cells));
    });
    s.appendChild(el("div", { cls: "scroll" }, [t]));
    var notes = (x.notes || []).slice();
    if (x.unpaired_exits) notes.push(fmtInt(x.unpaired_exits) + " kvm_exit(s) had no kvm_entry (next exit, lost events or the end of the trace came first).");
    if (notes.length) s.appendChild(el("ul", { cls: "notes" }, notes.map(function (n) { return el("li", { text: n }); })));
  }

  // `exitscope run`: the benchmark's own figures next to the trace.
  function bench(b) {
    if (!b || !Array.isArray(b.results) || !b.results.length) return;
    var mode = b.mode || {}, host = b.host || {};
    var note = "Measured by exitscope's VMM" + (isNum(mode.cpl) ? " at CPL" + mode.cpl : "") + (mode.reason ? " (" + mode.reason + ")" : "") +
      ". Cycles are per iteration minus the empty-loop baseline; exits per iteration from KVM's binary statistics.";
    var s = section("bench-section", "Benchmark", note);
    var t = el("table", { id: "bench" });
    t.appendChild(el("tr", {}, [th("Test", "l"), th("Status", "l"), th("Cycles (median)"), th("Min"), th("Max"), th("ns / iteration"), th("Exits / iteration"), th("Exit kind", "l")]));
    var f1 = function (v) { return isNum(v) ? v.toFixed(1) : "–"; }, f2 = function (v) { return isNum(v) ? v.toFixed(2) : "–"; };
    b.results.forEach(function (r) {
      t.appendChild(el("tr", {}, [el("td", { cls: "l fn", text: r.test }), el("td", { cls: "l", text: r.status || "–" }), num(r.cycles_median, f1), num(r.cycles_min, f1), num(r.cycles_max, f1), num(r.ns_median, f1), num(r.exits_per_iteration, f2), el("td", { cls: "l", text: r.exit_kind || "–" })]));
    });
    s.appendChild(el("div", { cls: "scroll" }, [t]));
    var facts = [];
    ["cpu_model", "kernel", "kvm_flavour", "tsc_khz"].forEach(function (k) { if (host[k] !== undefined && host[k] !== null) facts.push(k.replace(/_/g, " ") + ": " + (typeof host[k] === "object" ? JSON.stringify(host[k]) : host[k])); });
    if (facts.length) s.appendChild(el("p", { cls: "note", id: "bench-host", text: "Host: " + facts.join(" · ") }));
    var notes = b.results.filter(function (r) { return r.reason; }).map(function (r) { return r.test + ": " + r.reason; });
    if (notes.length) s.appendChild(el("ul", { cls: "notes" }, notes.map(function (n) { return el("li", { text: n }); })));
  }

  // Exit classification: rendered generically (scalar fields as columns).
  function genericTable(title, id, rows, note) {
    if (!rows) return;
    if (!Array.isArray(rows) && typeof rows === "object") {
      rows = Object.keys(rows).map(function (k) { var v = rows[k]; return (v && typeof v === "object" && !Array.isArray(v)) ? Object.assign({ name: k }, v) : { name: k, value: v }; });
    }
    if (!rows.length) return;
    var cols = [];
    rows.forEach(function (o) { Object.keys(o).forEach(function (k) { if (cols.indexOf(k) < 0 && (o[k] === null || typeof o[k] !== "object")) cols.push(k); }); });
    // Names first (string columns), then counts, then times; keys arrive sorted.
    var rank = function (c) { return rows.some(function (o) { return typeof o[c] === "string"; }) ? 0 : c === "count" ? 1 : 2; };
    cols.sort(function (a, b) { return rank(a) - rank(b); });
    var s = section(id + "-section", title, note);
    var t = el("table", { id: id });
    t.appendChild(el("tr", {}, cols.map(function (c, i) { return th(c.replace(/_ns$/, "").replace(/_/g, " "), i === 0 ? "l" : ""); })));
    rows.forEach(function (o) {
      t.appendChild(el("tr", {}, cols.map(function (c, i) {
        var v = o[c];
        if (i === 0 || typeof v === "string") return el("td", { cls: "l fn", text: v === undefined || v === null ? "–" : String(v) });
        if (/_ns$/.test(c)) return num(v);
        return num(v, fmtInt);
      })));
    });
    s.appendChild(el("div", { cls: "scroll" }, [t]));
    return s;
  }

  // Function-graph exits split into phases: each reason's "total", "before", "run", "after",
  // "other", "completion" is a distribution ({count, mean_ns, p50_ns, ...}) or null.
  function exitPhases(x, label) {
    if (!x) return;
    if (!Array.isArray(x.reasons)) { genericTable("Exits", "exits", x); return; }
    var withPhases = x.reasons.filter(function (q) { return q.total; });
    if (!withPhases.length) return; // an event trace: nothing to split
    var PHASES = ["before", "run", "after", "other"];
    if (withPhases.some(function (q) { return q.completion && q.completion.total_ns > 0; })) PHASES.push("completion");
    var note = "Each exit split into phases whose means add up to the total: before = calls before the vendor run call, run = the run call (world switch + guest), after = exit handling, other = the root's own self time" + (PHASES.length > 4 ? ", completion = work at the next KVM_RUN for an exit that went to userspace" : "") + ". " +
      fmtInt(x.exits) + " exits in " + fmtInt(x.whole_roots) + " whole and " + fmtInt(x.split_roots) + " split roots" +
      (x.unattributed_ns ? "; " + fmtNs(x.unattributed_ns) + " of split roots outside every exit" : "") + ".";
    var s = section("exits-section", "Exit phases" + (label ? ": " + label : ""), note);
    var t = el("table", { id: uid("exits") });
    t.appendChild(el("tr", {}, [th("Reason", "l"), th("Count"), th("Mean"), th("p50"), th("p99")].concat(PHASES.map(function (p) { return th(p.charAt(0).toUpperCase() + p.slice(1)); }), [th("Phases (mean)", "l"), th("Evidence", "l")])));
    withPhases.forEach(function (r) {
      var tot = r.total || {};
      var bar = el("div", { cls: "phases" });
      var sum = PHASES.reduce(function (a, p) { return a + ((r[p] || {}).mean_ns || 0); }, 0);
      PHASES.forEach(function (p, i) {
        var m = (r[p] || {}).mean_ns || 0;
        if (!sum || !m) return;
        var seg = el("span", { cls: "ph ph" + i, title: p + ": " + fmtNs(m) });
        seg.style.width = (100 * m / sum) + "%";
        bar.appendChild(seg);
      });
      var ev = (r.evidence || []).map(function (e) { return e.name + (e.count > 1 ? " ×" + fmtInt(e.count) : ""); }).join(", ");
      t.appendChild(el("tr", {}, [el("td", { cls: "l fn", text: r.reason }), num(r.count, fmtInt), num(tot.mean_ns), num(tot.p50_ns), num(tot.p99_ns)]
        .concat(PHASES.map(function (p) { return num((r[p] || {}).mean_ns); }))
        .concat([el("td", { cls: "l" }, [bar]), el("td", { cls: "l ev", text: ev })])));
    });
    s.appendChild(el("div", { cls: "scroll" }, [t]));
    s.appendChild(el("div", { cls: "legend" }, PHASES.map(function (p, i) { return el("span", {}, [el("span", { cls: "sw ph" + i }), p]); })));
  }

  function events(r) {
    if (!r.events || typeof r.events !== "object") return;
    var names = Object.keys(r.events);
    if (!names.length) return;
    names.sort(function (a, b) { return (r.events[b] - r.events[a]) || (a < b ? -1 : 1); });
    var s = section("events-section", "Events", "Tracepoint events seen in the trace.");
    var t = el("table", { id: "events" }, [el("tr", {}, [th("Event", "l"), th("Count")])]);
    names.forEach(function (n) { t.appendChild(el("tr", {}, [el("td", { cls: "l fn", text: n }), num(r.events[n], fmtInt)])); });
    s.appendChild(t);
  }

  function flat(r) {
    var f = (r.flat || []).slice(0, 40);
    if (!f.length) return;
    var s = section("flat-section", "Functions", "Flat profile: per function, inclusive over outermost calls (recursion counted once), largest total first.");
    var t = el("table", { id: "flat" });
    t.appendChild(el("tr", {}, [th("Function", "l"), th("Calls"), th("Total"), th("Self"), th("Mean"), th("Min"), th("p50"), th("p99"), th("Max"), th("Distribution", "l")]));
    f.forEach(function (x) {
      t.appendChild(el("tr", {}, [fnCell(x, 0, null), num(x.calls, fmtInt), num(x.total_ns), num(x.self_ns), num(x.mean_ns), num(x.min_ns), num(x.p50_ns), num(x.p99_ns), num(x.max_ns), el("td", { cls: "l" }, [sparkline(x.histogram)])]));
    });
    s.appendChild(el("div", { cls: "scroll" }, [t]));
  }

  function histograms(r) {
    var latency = function (x) { return x.total || x.handling; };
    var reasons = r.exits && Array.isArray(r.exits.reasons) ? r.exits.reasons.filter(function (x) { return latency(x) && normBins(latency(x).histogram).length; }) : [];
    var funcs = (r.flat || []).filter(function (x) { return normBins(x.histogram).length; }).slice(0, 6);
    if (!reasons.length && !funcs.length) return;
    var s = section("hist-section", "Latency histograms", "Counts per latency bin on a log-scaled time axis. Hover a bar for its range and count.");
    if (reasons.length) {
      s.appendChild(el("h3", { text: "Per exit reason" }));
      var g = el("div", { cls: "hists", id: "reason-hists" });
      reasons.forEach(function (x) { var d = latency(x); g.appendChild(histCard(x.reason + (x.total ? "" : " (handling)"), statLine(d, "exit"), d.histogram)); });
      s.appendChild(g);
    }
    if (funcs.length) {
      s.appendChild(el("h3", { text: "Top functions by total time" }));
      var g2 = el("div", { cls: "hists", id: "func-hists" });
      funcs.forEach(function (x) { g2.appendChild(histCard(x.function + (x.module ? " [" + x.module + "]" : ""), statLine(x, "call"), x.histogram)); });
      s.appendChild(g2);
    }
  }

  function diagnostics(r, label) {
    var d = r.diagnostics || [];
    if (!d.length) return;
    var s = section("diag-section", "Diagnostics" + (label ? ": " + label : ""));
    s.appendChild(el("div", { cls: "diag", text: d.map(function (x) { return x.file + ":" + x.line + ":" + x.column + ": " + x.severity + ": " + x.message; }).join("\n") }));
  }

  // ---------- side-by-side tree: the one alignment (exitscope_analyze::diff::DiffReport) ----------
  function diffTree(D, A, B) {
    if (!Array.isArray(D.tree) || !D.tree.length) return;
    var s = section("difftree-section", "Side by side: " + A.label + " vs " + B.label,
      (D.normalized ? "Vendor-normalized (svm_*/vmx_* aligned, vendor-only wrappers collapsed). " : "Not vendor-normalized. ") + D.sign + "." +
      ((D.collapsed || []).length ? " Collapsed wrappers: " + D.collapsed.map(function (c) {
        return c.function + (c.module ? " [" + c.module + "]" : "") + " (" + (c.side === "a" ? A.label : B.label) + ", " + fmtInt(c.count) + "×" + (c.at_root ? ", root: self time left out" : "") + ")";
      }).join(", ") + "." : ""));
    var t = el("table", { id: "difftree" });
    t.appendChild(el("thead", {}, [
      el("tr", {}, [th("", "l"), th("A: " + A.label, "grp", { colspan: 2 }), th("B: " + B.label, "grp", { colspan: 2 }), th("Δ (B − A)", "grp", { colspan: 3 })]),
      el("tr", {}, [th("Function", "l"), th("Calls", "sep"), th("Mean"), th("Calls", "sep"), th("Mean"), th("Mean", "sep"), th("Self"), th("Ratio")]),
    ]));
    var body = el("tbody"), rows = [];
    function side(x) { return x ? [num(x.count, fmtInt), num(x.mean_ns)] : [el("td", { cls: "n dim", text: "–" }), el("td", { cls: "n dim", text: "–" })]; }
    function d(v) { return isNum(v) ? el("td", { cls: "n delta " + (v > 0 ? "up" : v < 0 ? "down" : ""), text: fmtDelta(v) }) : el("td", { cls: "n dim", text: "–" }); }
    (function walk(nodes, depth) {
      nodes.forEach(function (n) {
        var who = n.a || n.b || { function: n.key };
        var label = { function: n.a && n.b && n.a.function !== n.b.function ? n.a.function + " ↔ " + n.b.function : who.function, module: n.a && n.b && n.a.module !== n.b.module ? null : who.module };
        var kids = n.children || [];
        var tw = el("span", { cls: "tw" + (kids.length ? "" : " leaf"), text: kids.length ? "▾" : "·" });
        var fc = fnCell(label, depth, tw);
        if (n.status !== "both") fc.appendChild(el("span", { cls: "irq", text: n.status === "only_a" ? "only A" : "only B", title: "only in " + (n.status === "only_a" ? A.label : B.label) }));
        var sa = side(n.a), sb = side(n.b);
        sa[0].className += " sep"; sb[0].className += " sep";
        var dm = d(n.delta_ns); dm.className += " sep";
        var tr = el("tr", {}, [fc].concat(sa, sb, [dm, d(n.self_delta_ns), num(n.ratio, function (v) { return isNum(v) ? v.toFixed(2) + "×" : "–"; })]));
        body.appendChild(tr);
        rows.push({ depth: depth, hasKids: kids.length > 0, tr: tr, tw: tw });
        walk(kids, depth + 1);
      });
    })(D.tree || [], 0);
    t.appendChild(body);
    s.appendChild(el("div", { cls: "scroll" }, [t]));
    makeCollapsible(t, rows, rows.length <= 120 ? Infinity : 2);
  }

  // Exit reasons of both traces, from the same comparison.
  function exitDiff(D, A, B) {
    if (!Array.isArray(D.exits) || !D.exits.length) return;
    var s = section("exitdiff-section", "Exit reasons: " + A.label + " vs " + B.label, "Per exit reason; the latency compared is the whole exit (function graph) or kvm_exit → kvm_entry handling time, the same measure on both sides. " + D.sign + ".");
    var t = el("table", { id: "exitdiff" });
    t.appendChild(el("tr", {}, [th("Reason", "l"), th("Measure", "l"), th("A count", "sep"), th("A p50"), th("A p99"), th("B count", "sep"), th("B p50"), th("B p99"), th("Δ mean", "sep"), th("Δ p50"), th("Ratio")]));
    function d(v) { return isNum(v) ? el("td", { cls: "n delta " + (v > 0 ? "up" : v < 0 ? "down" : ""), text: fmtDelta(v) }) : el("td", { cls: "n dim", text: "–" }); }
    D.exits.forEach(function (x) {
      var a = x.a || {}, b = x.b || {};
      t.appendChild(el("tr", {}, [el("td", { cls: "l fn", text: x.reason }), el("td", { cls: "l", text: x.measure }), num(a.count, fmtInt), num(a.p50_ns), num(a.p99_ns), num(b.count, fmtInt), num(b.p50_ns), num(b.p99_ns), d(x.delta_ns), d(x.p50_delta_ns), num(x.ratio, function (v) { return isNum(v) ? v.toFixed(2) + "×" : "–"; })]));
    });
    s.appendChild(el("div", { cls: "scroll" }, [t]));
  }

  // ---------- flame graph: hover details and click-to-zoom on inferno's static SVG ----------
  function flame() {
    var svg = document.querySelector("#flame svg");
    if (!svg) return;
    var frames = svg.querySelector("#frames");
    var details = svg.querySelector("#details");
    var unzoom = svg.querySelector("#unzoom");
    if (!frames) return;
    var total = parseInt(frames.getAttribute("total_samples"), 10);
    var fw = parseFloat(frames.getAttribute("width")) || 1180;
    var fontPx = 12 * 0.59;
    var gs = Array.prototype.slice.call(frames.children);
    var info = gs.map(function (g) {
      var r = g.querySelector("rect"), t = g.querySelector("text"), ti = g.querySelector("title");
      var name = ti ? ti.textContent.replace(/ \([^()]*\)$/, "") : "";
      return { g: g, r: r, t: t, title: ti ? ti.textContent : "", name: name,
        x: parseInt(r.getAttribute("fg:x"), 10), w: parseInt(r.getAttribute("fg:w"), 10), y: parseFloat(r.getAttribute("y")),
        rx: r.getAttribute("x"), rw: r.getAttribute("width"), tx: t ? t.getAttribute("x") : null, tt: t ? t.textContent : "" };
    });
    function label(f, pct) {
      var chars = Math.floor((pct * fw / 100 - 3) / fontPx);
      if (chars < 3) return "";
      return f.name.length > chars ? f.name.slice(0, chars - 2) + ".." : f.name;
    }
    // inferno leaves some labels (the "all" frame's) to its own script; fill them in.
    info.forEach(function (f) {
      if (f.t && !f.tt) { f.tt = label(f, parseFloat(f.rw)); f.t.textContent = f.tt; }
    });
    function reset() {
      info.forEach(function (f) {
        f.g.classList.remove("hide", "parent");
        f.r.setAttribute("x", f.rx); f.r.setAttribute("width", f.rw);
        if (f.t) { f.t.setAttribute("x", f.tx); f.t.textContent = f.tt; }
      });
      if (unzoom) unzoom.classList.add("hide");
    }
    function zoom(z) {
      info.forEach(function (f) {
        if (f.y > z.y - 0.01 && f.x <= z.x && f.x + f.w >= z.x + z.w) {
          // z itself or an ancestor: full width
          f.g.classList.remove("hide");
          f.g.classList.toggle("parent", f !== z);
          f.r.setAttribute("x", "0%"); f.r.setAttribute("width", "100%");
          if (f.t) { f.t.setAttribute("x", (100 * 3 / fw) + "%"); f.t.textContent = label(f, 100); }
        } else if (f.y < z.y && f.x >= z.x && f.x + f.w <= z.x + z.w) {
          var px = 100 * (f.x - z.x) / z.w, pw = 100 * f.w / z.w;
          f.g.classList.remove("hide", "parent");
          f.r.setAttribute("x", px + "%"); f.r.setAttribute("width", pw + "%");
          if (f.t) { f.t.setAttribute("x", (px + 100 * 3 / fw) + "%"); f.t.textContent = label(f, pw); }
        } else {
          f.g.classList.add("hide");
        }
      });
      if (unzoom) unzoom.classList.remove("hide");
    }
    info.forEach(function (f) {
      f.g.addEventListener("click", function () { if (f.w >= total) reset(); else zoom(f); });
      f.g.addEventListener("mouseover", function () { if (details) details.textContent = "Function: " + f.title; });
      f.g.addEventListener("mouseout", function () { if (details) details.textContent = " "; });
    });
    if (unzoom) unzoom.addEventListener("click", reset);
  }

  // ---------- page ----------
  var reps = DATA.reports || [];
  summary(reps);
  bench(DATA.bench);
  if (DATA.mode === "diff" && reps.length === 2) {
    if (DATA.diff) { diffTree(DATA.diff, reps[0], reps[1]); exitDiff(DATA.diff, reps[0], reps[1]); }
    reps.forEach(function (e) { exitReasons(e.report, e.label); });
    reps.forEach(function (e) { exitPhases(e.report.exits, e.label); });
    reps.forEach(function (e) { diagnostics(e.report, e.label); });
  } else if (reps.length) {
    var r = reps[0].report;
    callTree(r, "calltree");
    exitReasons(r, null);
    exitPhases(r.exits, null);
    events(r);
    flat(r);
    histograms(r);
    diagnostics(r, null);
  }
  flame();
  document.body.setAttribute("data-rendered", "true");

  // `report.html#selftest`: exercise the interactive parts and record what happened in
  // `data-selftest`, so a headless browser without a driver (`--dump-dom`) can test them.
  if (location.hash === "#selftest") {
    var out = [];
    var visible = function (t) { return Array.prototype.filter.call(t.querySelectorAll("tbody tr"), function (r) { return r.style.display !== "none"; }).length; };
    var tree = document.querySelector("table#calltree, table#difftree");
    var tw = tree && tree.querySelector("tbody .tw:not(.leaf)");
    if (tw) {
      var before = visible(tree);
      tw.click();
      var collapsed = visible(tree);
      tw.click();
      out.push("rows:" + before + "/" + collapsed + "/" + visible(tree));
    }
    var gs = document.querySelectorAll("#flame #frames > g");
    var narrow = Array.prototype.filter.call(gs, function (g) { return parseFloat(g.querySelector("rect").getAttribute("width")) < 60; })[0];
    if (narrow) {
      narrow.dispatchEvent(new MouseEvent("click", { bubbles: true }));
      var hidden = document.querySelectorAll("#flame #frames > g.hide").length;
      var w = narrow.querySelector("rect").getAttribute("width");
      var uz = document.querySelector("#flame #unzoom");
      if (uz) uz.dispatchEvent(new MouseEvent("click", { bubbles: true }));
      out.push("zoom:" + hidden + "/" + w + "/" + document.querySelectorAll("#flame #frames > g.hide").length);
    }
    document.body.setAttribute("data-selftest", out.join(";"));
  }
})();

#!/usr/bin/env python3
"""Decode an exitscope .pftrace with the `perfetto_trace_pb2` module of PyPI's `perfetto`
wheel and check it the way trace_processor reads it; print what was found as JSON.

Usage: pftrace_check.py TRACE.pftrace

Checks (each failure is a line in "errors"):
- one packet sequence; its first packet sets SEQ_INCREMENTAL_STATE_CLEARED; every interned
  id is defined once, in or before the packet that uses it, and packets that use one set
  SEQ_NEEDS_INCREMENTAL_STATE;
- every event is on a described track; per track, time never goes back, every SLICE_END
  closes an open SLICE_BEGIN, nothing is left open, and every slice lies inside its parent.

`python3 pftrace_check.py --probe` exits 0 when the modules are importable.
"""
import json
import sys


def main():
    try:
        from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb
    except ImportError as e:  # the caller prints SKIP
        print(f"cannot import perfetto_trace_pb2: {e}", file=sys.stderr)
        return 3
    if sys.argv[1] == "--probe":
        return 0
    trace = pb.Trace()
    trace.ParseFromString(open(sys.argv[1], "rb").read())
    TE = pb.TrackEvent
    errors = []
    names, cats, ann_names, strings = {}, {}, {}, {}
    tracks = {}
    events = []
    seqs = set()
    for i, p in enumerate(trace.packet):
        seqs.add(p.trusted_packet_sequence_id)
        cleared = bool(p.sequence_flags & 1)
        if cleared != (i == 0):
            errors.append(f"packet {i}: SEQ_INCREMENTAL_STATE_CLEARED is {cleared}")
        if p.HasField("interned_data"):
            d = p.interned_data
            for table, entries in ((names, d.event_names), (cats, d.event_categories),
                                   (ann_names, d.debug_annotation_names)):
                for e in entries:
                    if e.iid in table:
                        errors.append(f"packet {i}: iid {e.iid} defined twice")
                    table[e.iid] = e.name
            for e in d.debug_annotation_string_values:
                if e.iid in strings:
                    errors.append(f"packet {i}: string iid {e.iid} defined twice")
                strings[e.iid] = e.str.decode()
        if p.HasField("track_descriptor"):
            t = p.track_descriptor
            kind = "thread" if t.HasField("thread") else "process" if t.HasField("process") \
                else "counter" if t.HasField("counter") else "track"
            name = t.thread.thread_name if kind == "thread" else \
                t.process.process_name if kind == "process" else t.name
            if kind == "thread" and t.name and t.name != name:
                errors.append(f"track {t.uuid}: name {t.name!r} != thread_name {name!r}")
            tracks[t.uuid] = {"name": name, "parent": t.parent_uuid or None, "kind": kind}
        if p.HasField("track_event"):
            e = p.track_event
            uses = e.HasField("name_iid") or len(e.debug_annotations) > 0 or len(e.category_iids) > 0
            if uses and not p.sequence_flags & 2:
                errors.append(f"packet {i}: uses interned data without SEQ_NEEDS_INCREMENTAL_STATE")
            if e.track_uuid not in tracks:
                errors.append(f"packet {i}: event on undescribed track {e.track_uuid}")
                continue
            name = None
            if e.HasField("name_iid"):
                name = names.get(e.name_iid)
                if name is None:
                    errors.append(f"packet {i}: name iid {e.name_iid} not defined yet")
            anns = {}
            for a in e.debug_annotations:
                key = ann_names.get(a.name_iid)
                if key is None:
                    errors.append(f"packet {i}: annotation name iid {a.name_iid} not defined yet")
                    continue
                v = a.WhichOneof("value")
                if v == "string_value_iid":
                    val = strings.get(a.string_value_iid)
                    if val is None:
                        errors.append(f"packet {i}: string iid {a.string_value_iid} not defined yet")
                else:
                    val = getattr(a, v)
                anns[key] = val
            events.append({"ts": p.timestamp, "type": e.type, "track": e.track_uuid,
                           "name": name, "anns": anns,
                           "value": e.double_counter_value if e.HasField("double_counter_value") else None})
    if len(seqs) != 1:
        errors.append(f"{len(seqs)} packet sequences")

    # Per-track nesting.
    slices = {}  # track -> list of [name, depth, begin, end, anns]
    stacks, last = {}, {}
    for e in events:
        t = e["track"]
        if e["ts"] < last.get(t, 0):
            errors.append(f"track {t}: time goes back to {e['ts']}")
        last[t] = e["ts"]
        st = stacks.setdefault(t, [])
        out = slices.setdefault(t, [])
        if e["type"] == TE.TYPE_SLICE_BEGIN:
            st.append(len(out))
            out.append([e["name"], len(st) - 1, e["ts"], None, e["anns"]])
        elif e["type"] == TE.TYPE_SLICE_END:
            if not st:
                errors.append(f"track {t}: SLICE_END at {e['ts']} with nothing open")
            else:
                out[st.pop()][3] = e["ts"]
    for t, st in stacks.items():
        if st:
            errors.append(f"track {t}: {len(st)} slices left open")
    for t, out in slices.items():
        parents = []
        for s in out:
            del parents[s[1]:]
            if parents and s[3] is not None:
                p = parents[-1]
                if not (p[2] <= s[2] and s[3] <= p[3]):
                    errors.append(f"track {t}: {s[:4]} outside its parent {p[:4]}")
            parents.append(s)

    def is_calls(u):
        k = tracks[u]
        return k["kind"] == "thread" or (k["kind"] == "track" and k["parent"] in tracks
                                         and tracks[k["parent"]]["kind"] == "process")
    call_tracks = [u for u in tracks if is_calls(u) and tracks[u]["name"] != "lost events"]
    exit_tracks = [u for u in tracks if tracks[u]["name"] == "exits"]
    exit_events = [e for e in events if e["track"] in exit_tracks and e["type"] in (1, 3)]
    summary = [e for e in events if e["name"] == "summary"]
    counters = {}
    for e in events:
        if e["type"] == TE.TYPE_COUNTER:
            counters.setdefault(tracks[e["track"]]["name"], []).append([e["ts"], e["value"]])
    print(json.dumps({
        "packets": len(trace.packet),
        "errors": errors,
        "call_tracks": sorted(tracks[u]["name"] for u in call_tracks),
        "thread_tracks": sorted(t["name"] for t in tracks.values() if t["kind"] == "thread"),
        "exit_tracks_under": sorted(tracks[tracks[u]["parent"]]["name"] for u in exit_tracks),
        "roots": sum(1 for u in call_tracks for s in slices.get(u, []) if s[1] == 0),
        "call_slices": sum(len(slices.get(u, [])) for u in call_tracks),
        "max_depth": max((s[1] for u in call_tracks for s in slices.get(u, [])), default=-1),
        "exit_slices": sum(1 for e in exit_events if e["type"] == 1),
        "exit_instants": sum(1 for e in exit_events if e["type"] == 3),
        "exit_reasons": sorted({e["name"] for e in exit_events}),
        "exits_missing_annotations": sum(
            1 for e in exit_events
            if not {"reason", "source"} <= e["anns"].keys()
            or (e["type"] == 1 and "duration_ns" not in e["anns"])),
        "exit_annotation_keys": sorted({k for e in exit_events for k in e["anns"]}),
        "root_annotation_keys": sorted({k for u in call_tracks for s in slices.get(u, [])
                                        if s[1] == 0 for k in s[4]}),
        "lost_markers": sum(1 for e in events if tracks[e["track"]]["name"] == "lost events"),
        "event_instants": sum(1 for e in events if tracks[e["track"]]["name"] == "events"),
        "counters": counters,
        "summary": summary[0]["anns"] if summary else None,
    }, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

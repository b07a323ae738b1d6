//! Write a synthetic trace for the throughput benchmarks:
//! `synth_trace fgraph|events MEGABYTES PATH` (`-` = stdout). Prints `bytes lines`.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(kind), Some(mb), Some(path)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: synth_trace fgraph|events MEGABYTES PATH");
        std::process::exit(2);
    };
    let Ok(mb) = mb.parse::<u64>() else {
        eprintln!("synth_trace: MEGABYTES must be a number, not {mb:?}");
        std::process::exit(2);
    };
    let mut out: Box<dyn Write> = if path == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        match std::fs::File::create(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("synth_trace: {path}: {e}");
                std::process::exit(2);
            }
        }
    };
    let target = mb * 1_000_000;
    let r = match kind.as_str() {
        "fgraph" => exitscope_testkit::synth::fgraph(&mut out, target),
        "events" => exitscope_testkit::synth::events(&mut out, target),
        _ => {
            eprintln!("synth_trace: kind must be fgraph or events, not {kind:?}");
            std::process::exit(2);
        }
    };
    match r {
        Ok((bytes, lines)) => println!("{bytes} {lines}"),
        Err(e) => {
            eprintln!("synth_trace: {path}: {e}");
            std::process::exit(1);
        }
    }
}

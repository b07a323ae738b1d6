//! Writes a synthetic function_graph + kvm_exit/kvm_entry trace.dat with
//! [`exitscope_tracedat::write::fixture::demo_funcgraph`]: the fixture generator for the
//! function_graph tests (the tracer is refused on the machine the other fixtures were
//! recorded on) and the benchmark input.
//!
//! `cargo run --release -p exitscope-tracedat --example gen_funcgraph -- OUT VERSION COMPRESSION ITERATIONS`
//! with VERSION 6 or 7 and COMPRESSION none, zlib or zstd.

use exitscope_tracedat::Compression;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: gen_funcgraph OUT VERSION(6|7) COMPRESSION(none|zlib|zstd) ITERATIONS");
        std::process::exit(2);
    }
    let version: u32 = args[2].parse().unwrap_or(7);
    let compression = match args[3].as_str() {
        "zlib" => Compression::Zlib,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    };
    let iterations: u64 = args[4].parse().unwrap_or(40);
    let w = exitscope_tracedat::write::fixture::demo_funcgraph(version, compression, iterations);
    if let Err(e) = std::fs::write(&args[1], w.to_bytes()) {
        eprintln!("gen_funcgraph: {}: {e}", args[1]);
        std::process::exit(1);
    }
}

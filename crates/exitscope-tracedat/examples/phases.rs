//! Times the phases of reading a trace.dat (parse + decompress, merge only, merge + render)
//! to see where the time goes. `cargo run --release --example phases -- FILE`

use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: phases FILE");
        std::process::exit(2);
    };
    let bytes = std::fs::read(&path).unwrap_or_default();
    let t = Instant::now();
    let Ok(trace) = exitscope_tracedat::TraceDat::parse(&bytes) else {
        eprintln!("phases: cannot parse {path}");
        std::process::exit(1);
    };
    println!("parse+decompress {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut n = 0u64;
    if let Ok(mut m) = trace.merge() {
        while let Ok(Some(_)) = m.next_event() {
            n += 1;
        }
    }
    println!("merge {n} items {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut s = String::new();
    let mut len = 0;
    if let Ok(mut m) = trace.merge() {
        while let Ok(Some(it)) = m.next_event() {
            if let exitscope_tracedat::Merged::Event(e) = it {
                s.clear();
                trace.render(e.payload, &mut s);
                len += s.len();
            }
        }
    }
    println!("merge+render {:.3}s ({len} bytes)", t.elapsed().as_secs_f64());
}

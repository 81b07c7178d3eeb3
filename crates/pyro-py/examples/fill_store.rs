//! `make bench-python`'s store filler: adds N stopped workspaces (no
//! guests) to the store under STATE_DIR, as pyro-bench does for its list
//! series. Usage: `fill_store STATE_DIR N`.

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, n] = args.as_slice() else {
        return Err("usage: fill_store STATE_DIR N".into());
    };
    let n: usize = n.parse().map_err(|e| format!("N: {e}"))?;
    let store = pyro_store::Store::open(&std::path::Path::new(dir).join("pyro.db"))
        .map_err(|e| e.to_string())?;
    store
        .bulk_insert_for_bench(n, pyro_core::now())
        .map_err(|e| e.to_string())
}

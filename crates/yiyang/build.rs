// rust-embed needs web/dist to exist at compile time; a bare checkout gets a placeholder page.
fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    if !dist.join("index.html").exists() {
        std::fs::create_dir_all(&dist).expect("create web/dist");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>颐养</title><p>管理界面尚未构建：请在 web/ 目录运行 npm ci && npm run build。</p>",
        )
        .expect("write placeholder");
    }
    println!("cargo:rerun-if-changed=../../web/dist/index.html");
}

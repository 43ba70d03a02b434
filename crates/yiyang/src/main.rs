#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // No transparent huge pages for this process (what mimalloc's `allow_thp=0` does, without an
    // environment variable): mimalloc returns freed memory 64 KB at a time, and the kernel then
    // zeroed a whole 2 MB page again on the next touch. That was a third of a 104k assessment
    // import's CPU on the client (0.4–0.7 s of system time; 0.2–0.4 s without).
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    yiyang::cli::main()
}

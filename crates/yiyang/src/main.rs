fn main() -> std::process::ExitCode {
    yiyang::cli::main()
}

//! The hostbot binary; everything happens in [`hostbot::main_with_args`], so that other binaries
//! can run hostbot the same way.

fn main() -> std::process::ExitCode {
    hostbot::main_with_args(std::env::args_os())
}

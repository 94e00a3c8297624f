#pragma once
// Ending the whole job from one rank: the only place (with run_main's normal return) where a
// Meridian process ends. Prints "rank R: <message>" to stderr and calls MPI_Abort, which makes
// mpirun kill every rank, so no rank is left waiting in a collective for a peer that is gone.
#include <string>

namespace meridian::launcher {

// Safe from any thread (main, watchdog, signal watcher); the first call wins, later ones wait for
// the end. Falls back to _Exit when MPI is not running.
[[noreturn]] void abort_job(const std::string& message, int exit_code);

}  // namespace meridian::launcher

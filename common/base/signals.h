#pragma once
// Process-wide signal setup for the daemons: SIGINT/SIGTERM are blocked in every thread
// (call before starting any) and taken synchronously by WaitForStopSignal; SIGPIPE is ignored
// so a vanished peer is an error return, not a crash.

#include <csignal>

namespace assay {

inline sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

// Blocks until SIGINT or SIGTERM arrives; returns its number.
inline int WaitForStopSignal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace assay

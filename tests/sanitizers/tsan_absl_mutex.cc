// ThreadSanitizer annotations for absl::Mutex, absl::CondVar and absl::Notification, linked
// into every executable of an ASSAY_SANITIZE=thread build (cmake/sanitizers.cmake) and nowhere
// else.
//
// Why: Debian's Abseil is not built with TSan, so absl::Mutex (atomics and futexes inside an
// uninstrumented library) creates no happens-before edge that TSan can see, and every access
// guarded by one would be reported as a race. Abseil annotates its mutex for TSan only when it
// is itself compiled with TSan. These definitions interpose the library's out-of-line entry
// points (an executable's symbols come first in the dynamic linker's search order, for our
// code, for libabsl itself and for gRPC, which calls absl::Mutex through its PLT), make the
// same __tsan_mutex_* calls Abseil's own annotations make, and forward to the library's
// definition found with dlsym(RTLD_NEXT).
//
// Limits: Await and CondVar waits are annotated as exclusive (writer) holds, which is how
// Assay and gRPC use them; everything a real call does inside the library (including the
// evaluation of absl::Condition predicates, on whichever thread absl runs them) is ignored
// by TSan, as Abseil's annotations ignore it.

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/config.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

#define ASSAY_STR2(x) #x
#define ASSAY_STR(x) ASSAY_STR2(x)

// Referenced by the link line (-Wl,--undefined) so that this object is always linked.
extern "C" {
int assay_tsan_absl_mutex_anchor = 0;
}

namespace {

// The library's definition of the member function whose mangled name, after "_ZN4absl<ns>"
// ("_ZNK4absl<ns>" for a const one), is `suffix` (e.g. "5Mutex4LockEv"). Aborts when it is
// missing: a TSan build without its mutex annotations would only report noise.
void* Real(const char* suffix, bool is_const = false) {
  const std::string ns = ASSAY_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name =
      std::string(is_const ? "_ZNK4absl" : "_ZN4absl") + std::to_string(ns.size()) + ns + suffix;
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found in libabsl\n", name.c_str());
    std::abort();
  }
  return f;
}

// REAL(Type, "suffix", args...): call the library's definition once looked up.
#define REAL(Fn, suffix, ...)                                 \
  ([&] {                                                      \
    static const auto f = reinterpret_cast<Fn>(Real(suffix)); \
    return f(__VA_ARGS__);                                    \
  }())
#define REAL_CONST(Fn, suffix, ...)                                 \
  ([&] {                                                            \
    static const auto f = reinterpret_cast<Fn>(Real(suffix, true)); \
    return f(__VA_ARGS__);                                          \
  }())

// Calls from inside the library into its own interposed entry points (AwaitWithTimeout calls
// AwaitWithDeadline, Notification's waits lock its mutex) reach these definitions too; only the
// outermost call on a thread is annotated, or a hold would be released twice.
thread_local int t_depth = 0;
struct Inside {
  Inside() { ++t_depth; }
  ~Inside() { --t_depth; }
};
#define ANNOTATE(call) (t_depth == 1 ? (void)(call) : (void)0)

using absl::Condition;
using absl::CondVar;
using absl::Duration;
using absl::Mutex;
using absl::Notification;
using absl::Time;

// An exclusive hold released around a blocking call and taken again, as Abseil annotates
// Await and CondVar::Wait: the call itself is ignored.
template <typename F>
auto Released(Mutex* mu, F call) {
  ANNOTATE(__tsan_mutex_pre_unlock(mu, 0));
  auto result = call();
  ANNOTATE(__tsan_mutex_post_unlock(mu, 0));
  ANNOTATE(__tsan_mutex_pre_lock(mu, 0));
  ANNOTATE(__tsan_mutex_post_lock(mu, 0, 0));
  return result;
}

template <typename F>
auto Locked(Mutex* mu, unsigned flags, F call) {
  ANNOTATE(__tsan_mutex_pre_lock(mu, flags));
  auto result = call();
  ANNOTATE(__tsan_mutex_post_lock(mu, flags, 0));
  return result;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

Mutex::~Mutex() {
  Inside inside;
  ANNOTATE(__tsan_mutex_destroy(this, __tsan_mutex_not_static));
  REAL(void (*)(Mutex*), "5MutexD2Ev", this);
}

void Mutex::Lock() {
  Inside inside;
  Locked(this, 0, [&] {
    REAL(void (*)(Mutex*), "5Mutex4LockEv", this);
    return 0;
  });
}

void Mutex::ReaderLock() {
  Inside inside;
  Locked(this, __tsan_mutex_read_lock, [&] {
    REAL(void (*)(Mutex*), "5Mutex10ReaderLockEv", this);
    return 0;
  });
}

bool Mutex::TryLock() {
  Inside inside;
  const unsigned flags = __tsan_mutex_try_lock;
  ANNOTATE(__tsan_mutex_pre_lock(this, flags));
  const bool ok = REAL(bool (*)(Mutex*), "5Mutex7TryLockEv", this);
  ANNOTATE(__tsan_mutex_post_lock(this, flags | (ok ? 0 : __tsan_mutex_try_lock_failed), 0));
  return ok;
}

bool Mutex::ReaderTryLock() {
  Inside inside;
  const unsigned flags = __tsan_mutex_read_lock | __tsan_mutex_try_lock;
  ANNOTATE(__tsan_mutex_pre_lock(this, flags));
  const bool ok = REAL(bool (*)(Mutex*), "5Mutex13ReaderTryLockEv", this);
  ANNOTATE(__tsan_mutex_post_lock(this, flags | (ok ? 0 : __tsan_mutex_try_lock_failed), 0));
  return ok;
}

void Mutex::Unlock() {
  Inside inside;
  ANNOTATE(__tsan_mutex_pre_unlock(this, 0));
  REAL(void (*)(Mutex*), "5Mutex6UnlockEv", this);
  ANNOTATE(__tsan_mutex_post_unlock(this, 0));
}

void Mutex::ReaderUnlock() {
  Inside inside;
  ANNOTATE(__tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock));
  REAL(void (*)(Mutex*), "5Mutex12ReaderUnlockEv", this);
  ANNOTATE(__tsan_mutex_post_unlock(this, __tsan_mutex_read_lock));
}

void Mutex::LockWhen(const Condition& cond) {
  Inside inside;
  Locked(this, 0, [&] {
    REAL(void (*)(Mutex*, const Condition&), "5Mutex8LockWhenERKNS0_9ConditionE", this, cond);
    return 0;
  });
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  Inside inside;
  Locked(this, __tsan_mutex_read_lock, [&] {
    REAL(void (*)(Mutex*, const Condition&), "5Mutex14ReaderLockWhenERKNS0_9ConditionE", this,
         cond);
    return 0;
  });
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  Inside inside;
  return Locked(this, 0, [&] {
    return REAL(bool (*)(Mutex*, const Condition&, Duration),
                "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE", this, cond, timeout);
  });
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  Inside inside;
  return Locked(this, 0, [&] {
    return REAL(bool (*)(Mutex*, const Condition&, Time),
                "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE", this, cond, deadline);
  });
}

void Mutex::Await(const Condition& cond) {
  Inside inside;
  Released(this, [&] {
    REAL(void (*)(Mutex*, const Condition&), "5Mutex5AwaitERKNS0_9ConditionE", this, cond);
    return 0;
  });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  Inside inside;
  return Released(this, [&] {
    return REAL(bool (*)(Mutex*, const Condition&, Duration),
                "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE", this, cond, timeout);
  });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  Inside inside;
  return Released(this, [&] {
    return REAL(bool (*)(Mutex*, const Condition&, Time),
                "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE", this, cond, deadline);
  });
}

void CondVar::Wait(Mutex* mu) {
  Inside inside;
  Released(mu, [&] {
    REAL(void (*)(CondVar*, Mutex*), "7CondVar4WaitEPNS0_5MutexE", this, mu);
    return 0;
  });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  Inside inside;
  return Released(mu, [&] {
    return REAL(bool (*)(CondVar*, Mutex*, Duration),
                "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE", this, mu, timeout);
  });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  Inside inside;
  return Released(mu, [&] {
    return REAL(bool (*)(CondVar*, Mutex*, Time),
                "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE", this, mu, deadline);
  });
}

// Notification: Notify releases and a wait that returns notified acquires, on the
// Notification's address. HasBeenNotified() is inline and reads an atomic the library wrote
// uninstrumented: a poll with it is still invisible (Assay's code does not poll one).
void Notification::Notify() {
  Inside inside;
  ANNOTATE(__tsan_release(this));
  REAL(void (*)(Notification*), "12Notification6NotifyEv", this);
}

void Notification::WaitForNotification() const {
  Inside inside;
  REAL_CONST(void (*)(const Notification*), "12Notification19WaitForNotificationEv", this);
  ANNOTATE(__tsan_acquire(const_cast<Notification*>(this)));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  Inside inside;
  const bool notified =
      REAL_CONST(bool (*)(const Notification*, Duration),
                 "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE", this, timeout);
  if (notified) ANNOTATE(__tsan_acquire(const_cast<Notification*>(this)));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  Inside inside;
  const bool notified =
      REAL_CONST(bool (*)(const Notification*, Time),
                 "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE", this, deadline);
  if (notified) ANNOTATE(__tsan_acquire(const_cast<Notification*>(this)));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl

//! In its own test binary: it changes the process environment, which no other test here reads.

use cli_support::{SPIN_LIMIT_VAR, park_idle_candle_workers};

#[test]
fn idle_workers_park_at_once_unless_the_user_chose_a_spin_limit() {
    // SAFETY: this binary's only test; no other thread reads the environment.
    unsafe { std::env::remove_var(SPIN_LIMIT_VAR) };
    park_idle_candle_workers();
    assert_eq!(std::env::var(SPIN_LIMIT_VAR).as_deref(), Ok("0"));

    unsafe { std::env::set_var(SPIN_LIMIT_VAR, "5000") };
    park_idle_candle_workers();
    assert_eq!(std::env::var(SPIN_LIMIT_VAR).as_deref(), Ok("5000"));
}

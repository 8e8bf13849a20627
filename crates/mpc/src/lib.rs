//! `cipherflow-mpc`: three-party replicated secret sharing (work in progress).

//! `cipherflow-tensor`: encrypted tensors on RNS-CKKS (work in progress).

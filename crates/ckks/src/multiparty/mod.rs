//! Multiparty CKKS: collective key generation and threshold decryption (work in progress).

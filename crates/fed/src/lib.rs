//! `cipherflow-fed`: federated learning with encrypted aggregation (work in progress).

//! Fuzzes the federation's configuration and roster files (TOML, JSON) and
//! what is derived from them before any round: validation, sizes, the model
//! and the packing plan. Any input must give Ok or a typed error.
#![no_main]
use cipherflow_fed::FederationConfig;
use cipherflow_fed::Roster;
use cipherflow_fed::PackingPlan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = FederationConfig::parse(text) {
        if cfg.validate().is_ok() {
            if let Ok(sizes) = cfg.sizes(4) {
                if let Ok(spec) = cfg.model_spec() {
                    if let Ok(mut m) = spec.build(0) {
                        let dim = m.num_params();
                        let _ = cipherflow_fed::training::flatten(&mut m);
                        if dim <= 1 << 16 {
                            let _ = PackingPlan::for_federation(&cfg, &sizes, None, dim);
                        }
                    }
                }
            }
        }
    }
    if let Ok(r) = serde_json::from_str::<Roster>(text) {
        let _ = r.validate();
    }
});

//! The inversion score of a split: SSIM and PSNR behave as defined
//! (identical images score 1 and 100 dB, noise lowers both); a learned
//! inverse network recovers the digits from the first convolution's
//! activations well enough that the model still classifies most
//! reconstructions, and less from a deeper cut.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_platform::{inversion_leakage, psnr, ssim, InversionData, InversionSettings};

#[test]
fn ssim_and_psnr_score_what_they_should() {
    let a: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37).sin().abs()).collect();
    assert!((ssim(&a, &a, &[1, 8, 8]).unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(psnr(&a, &a), 100.0);
    let noisy: Vec<f32> = a
        .iter()
        .enumerate()
        .map(|(i, v)| v + if i % 2 == 0 { 0.1 } else { -0.1 })
        .collect();
    let worse: Vec<f32> = a
        .iter()
        .enumerate()
        .map(|(i, v)| v + if i % 2 == 0 { 0.4 } else { -0.4 })
        .collect();
    let (s1, s2) = (
        ssim(&a, &noisy, &[1, 8, 8]).unwrap(),
        ssim(&a, &worse, &[1, 8, 8]).unwrap(),
    );
    assert!(s1 < 1.0 && s2 < s1, "{s1} {s2}");
    // PSNR of a uniform error of 0.1: 10·log10(1/0.01) = 20 dB.
    assert!((psnr(&a, &noisy) - 20.0).abs() < 1e-4);
    assert!(ssim(&a, &a[..32], &[1, 8, 8]).is_err());
    assert!(ssim(&a, &a, &[64]).is_err());
}

#[test]
fn the_first_convolutions_activations_give_the_digits_away() {
    let model = cipherflow_nn::examples::digits_cnn().unwrap();
    let data = cipherflow_nn::examples::digits().unwrap();
    let (public, held_out) = data.split(0.2, 7).unwrap();
    let settings = InversionSettings {
        epochs: 30,
        ..InversionSettings::default()
    };
    let data = InversionData {
        public: public.features(),
        held_out: held_out.features(),
        labels: Some(held_out.labels()),
        preprocessing: None,
    };
    let first = inversion_leakage(&model, 1, &data, &settings).unwrap();
    let deep = inversion_leakage(&model, 4, &data, &settings).unwrap();
    for l in [&first, &deep] {
        eprintln!(
            "k = {}: {} activations, SSIM {:.3}, PSNR {:.1} dB, accuracy on reconstructions {:.1} % \
             (on originals {:.1} %), agreement {:.1} %",
            l.k,
            l.activations,
            l.ssim,
            l.psnr,
            100.0 * l.accuracy_on_reconstructions.unwrap(),
            100.0 * l.accuracy.unwrap(),
            100.0 * l.agreement_on_reconstructions.unwrap()
        );
    }
    assert!(
        first.ssim > 0.5 && first.accuracy_on_reconstructions.unwrap() > 0.8,
        "{first:?}"
    );
    // The example shown on the model page: the first held-out input and
    // its reconstruction (a sigmoid's values), in the input's shape.
    let e = &first.example;
    assert_eq!(e.shape, model.input_shape().to_vec());
    assert_eq!(e.original, held_out.features().row(0).to_vec());
    assert_eq!(e.reconstruction.len(), e.original.len());
    assert!(e.reconstruction.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_ne!(e.reconstruction, deep.example.reconstruction);
    let img = cipherflow_platform::example_image(e).unwrap();
    assert_eq!(img.shape, [1, 8, 8]);
    // Without labels, the agreement alone; held-out inputs of another
    // width are refused.
    let unlabelled = InversionData {
        labels: None,
        ..data
    };
    let l = inversion_leakage(&model, 1, &unlabelled, &settings).unwrap();
    assert!(l.accuracy.is_none() && l.agreement_on_reconstructions.unwrap() > 0.8);
    // Knowing only the head, the same images come back (SSIM, PSNR), but
    // nothing is classified.
    let (head, _) = model.split_at(1).unwrap();
    let h = cipherflow_platform::inversion_leakage_of_head(&head, &unlabelled, &settings).unwrap();
    assert!(h.agreement_on_reconstructions.is_none() && h.accuracy.is_none());
    assert!((h.ssim - l.ssim).abs() < 1e-9, "{h:?} {l:?}");
    let narrow = public.features().slice(ndarray::s![.., ..10]).to_owned();
    let wrong = InversionData {
        held_out: &narrow,
        ..data
    };
    assert!(inversion_leakage(&model, 1, &wrong, &settings).is_err());
    assert!(deep.ssim < first.ssim, "{deep:?} vs {first:?}");
}

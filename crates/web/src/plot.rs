//! The pages' figures: SVG plots (a split's cost and leakage, ε over
//! rounds) and 8-bit images drawn on canvases.

use crate::api::Round;
use crate::format;
use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};

/// One split's figures, as the model page's table and plot show them.
#[derive(Clone, Debug, Default)]
pub struct SplitRow {
    /// The split.
    pub k: usize,
    /// Its head's time, when prepared.
    pub head_ms: Option<f64>,
    /// The inversion attack's SSIM, when measured.
    pub ssim: Option<f64>,
}

/// Head time (bars, left axis) and the inversion attack's SSIM (dots,
/// right axis, 0–1) per split.
pub fn splits(rows: &[SplitRow]) -> impl IntoView {
    const W: f64 = 600.0;
    const H: f64 = 220.0;
    const L: f64 = 50.0;
    const R: f64 = 50.0;
    const T: f64 = 16.0;
    const B: f64 = 34.0;
    let n = rows.len().max(1) as f64;
    let max_ms = rows.iter().filter_map(|r| r.head_ms).fold(1.0, f64::max);
    let x = move |i: usize| L + (i as f64 + 0.5) * (W - L - R) / n;
    let bw = ((W - L - R) / n * 0.5).max(6.0);
    let y_ms = move |v: f64| H - B - v / max_ms * (H - T - B);
    let y_ssim = move |v: f64| H - B - v * (H - T - B);
    let marks = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let bar = r.head_ms.map(|ms| {
                view! {
                    <rect x=x(i) - bw / 2.0 y=y_ms(ms) width=bw height=H - B - y_ms(ms) fill="#0b5cad">
                        <title>{format!("split {}: head {}", r.k, format::ms(ms))}</title>
                    </rect>
                }
            });
            let dot = r.ssim.map(|s| {
                view! {
                    <circle cx=x(i) cy=y_ssim(s) r=5 fill="#b42318">
                        <title>{format!("split {}: SSIM {s:.3}", r.k)}</title>
                    </circle>
                }
            });
            view! {
                {bar}
                {dot}
                <text x=x(i) y=H - B + 16.0 font-size=11 text-anchor="middle">{format!("k={}", r.k)}</text>
            }
        })
        .collect_view();
    view! {
        <svg class="plot" viewBox=format!("0 0 {W} {H}") role="img"
            aria-label="Head time (bars) and reconstruction SSIM (dots) per split">
            <line x1=L y1=H - B x2=W - R y2=H - B stroke="#888"/>
            <text x=4 y=T + 4.0 font-size=11>{format::ms(max_ms)}</text>
            <text x=W - R + 6.0 y=T + 4.0 font-size=11>"SSIM 1"</text>
            <text x=W - R + 6.0 y=H - B font-size=11>"0"</text>
            {marks}
        </svg>
    }
}

/// ε spent after each round (line) against the budget (dashed).
pub fn epsilon(rounds: &[Round], budget: Option<f64>) -> impl IntoView {
    const W: f64 = 600.0;
    const H: f64 = 220.0;
    const L: f64 = 46.0;
    const R: f64 = 16.0;
    const T: f64 = 14.0;
    const B: f64 = 30.0;
    let pts: Vec<(u64, f64)> = rounds
        .iter()
        .filter_map(|r| Some((r.round, r.epsilon?)))
        .collect();
    let top = pts
        .iter()
        .map(|p| p.1)
        .fold(budget.unwrap_or(0.0).max(1e-9), f64::max)
        * 1.1;
    let last = rounds.iter().map(|r| r.round).max().unwrap_or(1).max(1);
    let x = move |k: u64| {
        let f = if last == 1 {
            0.5
        } else {
            (k as f64 - 1.0) / (last as f64 - 1.0)
        };
        L + f * (W - L - R)
    };
    let y = move |v: f64| H - B - v / top * (H - T - B);
    let budget_line = budget.filter(|b| *b > 0.0).map(|b| {
        view! {
            <line x1=L y1=y(b) x2=W - R y2=y(b) stroke="#b42318" stroke-dasharray="6 4"/>
            <text x=W - R y=y(b) - 4.0 font-size=11 text-anchor="end" fill="#b42318">{format!("budget ε = {b}")}</text>
        }
    });
    let line = (!pts.is_empty()).then(|| {
        let points = pts
            .iter()
            .map(|&(k, e)| format!("{},{}", x(k), y(e)))
            .collect::<Vec<_>>()
            .join(" ");
        view! { <polyline fill="none" stroke="#0b5cad" stroke-width=2 points=points/> }
    });
    let dots = pts
        .iter()
        .map(|&(k, e)| {
            view! {
                <circle cx=x(k) cy=y(e) r=3.5 fill="#0b5cad">
                    <title>{format!("round {k}: ε = {e:.3}")}</title>
                </circle>
            }
        })
        .collect_view();
    view! {
        <svg class="plot" viewBox=format!("0 0 {W} {H}") role="img" aria-label="ε spent over rounds against the budget">
            <line x1=L y1=H - B x2=W - R y2=H - B stroke="#888"/>
            <line x1=L y1=T x2=L y2=H - B stroke="#888"/>
            <text x=4 y=T + 6.0 font-size=11>{format!("ε {top:.2}")}</text>
            <text x=L y=H - 8.0 font-size=11>"round 1"</text>
            <text x=W - R y=H - 8.0 font-size=11 text-anchor="end">{format!("round {last}")}</text>
            {budget_line}
            {line}
            {dots}
        </svg>
    }
}

/// RGBA pixels of an 8-bit image of `shape` `[C, H, W]` (C = 1 or 3,
/// channel-major); `None` when the values do not fit the shape.
pub fn rgba(shape: &[usize], values: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let [c, rows, cols] = *shape else { return None };
    let plane = rows.checked_mul(cols)?;
    if !(c == 1 || c == 3) || values.len() != c.checked_mul(plane)? || plane == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(4 * plane);
    for i in 0..plane {
        let at = |ch: usize| {
            values
                .get(if c == 3 { ch * plane + i } else { i })
                .copied()
                .unwrap_or(0)
        };
        out.extend_from_slice(&[at(0), at(1), at(2), 255]);
    }
    Some((u32::try_from(cols).ok()?, u32::try_from(rows).ok()?, out))
}

/// An 8-bit image on a canvas, one canvas pixel per image pixel (CSS
/// scales it).
pub fn pixels(shape: Vec<usize>, values: Vec<u8>, label: String) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let drawn = rgba(&shape, &values);
    let (w, h) = drawn.as_ref().map_or((0, 0), |d| (d.0, d.1));
    canvas.on_load(move |cv| {
        let Some((w, h, data)) = drawn else { return };
        let ctx = cv
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok());
        if let (Some(ctx), Ok(img)) = (
            ctx,
            web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&data), w, h),
        ) {
            let _ = ctx.put_image_data(&img, 0.0, 0.0);
        }
    });
    view! { <canvas node_ref=canvas width=w height=h class="pixels" role="img" aria-label=label></canvas> }
}

#[cfg(test)]
mod tests {
    use super::rgba;

    #[test]
    fn grey_and_colour_images() {
        let (w, h, px) = rgba(&[1, 1, 2], &[10, 20]).unwrap();
        assert_eq!((w, h), (2, 1));
        assert_eq!(px, [10, 10, 10, 255, 20, 20, 20, 255]);
        let (_, _, px) = rgba(&[3, 1, 1], &[1, 2, 3]).unwrap();
        assert_eq!(px, [1, 2, 3, 255]);
        assert!(rgba(&[2, 1, 1], &[1, 2]).is_none());
        assert!(rgba(&[1, 2, 2], &[1, 2, 3]).is_none());
        assert!(rgba(&[1, 8], &[0; 8]).is_none());
        assert!(rgba(&[1, usize::MAX, 2], &[]).is_none());
    }
}

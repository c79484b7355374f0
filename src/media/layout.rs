//! Where each picture goes on the screen, sans-IO: the number of remote participants, whether
//! there is a local preview, the output size and each picture's size in, rectangles out. One
//! participant fills the screen; two sit side by side; three and four share a 2x2 grid; the
//! preview is a picture-in-picture in the bottom-right corner. Every picture keeps its aspect
//! ratio (letterboxed in its cell, centred).

/// A rectangle in output pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// The centre point.
    pub fn centre(&self) -> (i32, i32) {
        (
            self.x + (self.width / 2) as i32,
            self.y + (self.height / 2) as i32,
        )
    }

    /// Whether `(x, y)` lies inside.
    pub fn contains(&self, x: i32, y: i32) -> bool {
        x >= self.x
            && y >= self.y
            && x < self.x + self.width as i32
            && y < self.y + self.height as i32
    }
}

/// The most remote participants shown at once (the grid is 2x2).
pub const MAX_PARTICIPANTS: usize = 4;

/// The preview's width as a fraction of the output width (1/4).
const PREVIEW_DIVISOR: u32 = 4;
/// The preview's margin from the screen edges, as a fraction of the output height (1/40).
const MARGIN_DIVISOR: u32 = 40;

/// The cells of `n` participants on a `width`x`height` output (before fitting the pictures).
pub fn cells(n: usize, width: u32, height: u32) -> Vec<Rect> {
    let (cols, rows) = match n.min(MAX_PARTICIPANTS) {
        0 => return Vec::new(),
        1 => (1, 1),
        2 => (2, 1),
        _ => (2, 2),
    };
    let (cw, ch) = (width / cols, height / rows);
    let count = n.min(MAX_PARTICIPANTS);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (c, r) = (i as u32 % cols, i as u32 / cols);
        let mut cell = Rect {
            x: (c * cw) as i32,
            y: (r * ch) as i32,
            width: cw,
            height: ch,
        };
        // Three participants: the third sits centred in the bottom row.
        if count == 3 && i == 2 {
            cell.x = ((width - cw) / 2) as i32;
        }
        out.push(cell);
    }
    out
}

/// The largest `pic_w`x`pic_h`-shaped rectangle inside `cell`, centred; sizes even (I420).
/// A picture of unknown size (0) fills the cell.
pub fn fit(cell: Rect, pic_w: u32, pic_h: u32) -> Rect {
    if pic_w == 0 || pic_h == 0 || cell.width == 0 || cell.height == 0 {
        return cell;
    }
    let (cw, ch) = (u64::from(cell.width), u64::from(cell.height));
    let (pw, ph) = (u64::from(pic_w), u64::from(pic_h));
    // Width-limited when pic_w/pic_h >= cw/ch.
    let (w, h) = if pw * ch >= ph * cw {
        (cw, (cw * ph / pw).max(2))
    } else {
        ((ch * pw / ph).max(2), ch)
    };
    let (w, h) = ((w & !1) as u32, (h & !1) as u32);
    Rect {
        x: cell.x + ((cell.width - w) / 2) as i32,
        y: cell.y + ((cell.height - h) / 2) as i32,
        width: w,
        height: h,
    }
}

/// The preview's rectangle: a quarter of the output width, the picture's shape, in the
/// bottom-right corner with a small margin.
pub fn preview(width: u32, height: u32, pic_w: u32, pic_h: u32) -> Rect {
    let margin = height / MARGIN_DIVISOR;
    let w = width / PREVIEW_DIVISOR;
    let (pw, ph) = if pic_w == 0 || pic_h == 0 {
        (16, 9)
    } else {
        (pic_w, pic_h)
    };
    let h = u32::try_from(u64::from(w) * u64::from(ph) / u64::from(pw))
        .unwrap_or(height)
        .min(height / 2);
    let r = fit(
        Rect {
            x: 0,
            y: 0,
            width: w,
            height: h.max(2),
        },
        pw,
        ph,
    );
    Rect {
        x: (width - r.width - margin) as i32,
        y: (height - r.height - margin) as i32,
        ..r
    }
}

/// The whole screen: a rectangle per participant (in the order given, up to
/// [`MAX_PARTICIPANTS`]), and the preview's when there is one. `pictures` are the participants'
/// picture sizes (0x0 when not known yet).
pub fn layout(
    pictures: &[(u32, u32)],
    preview_picture: Option<(u32, u32)>,
    width: u32,
    height: u32,
) -> (Vec<Rect>, Option<Rect>) {
    let rects = cells(pictures.len(), width, height)
        .into_iter()
        .zip(pictures)
        .map(|(cell, &(w, h))| fit(cell, w, h))
        .collect();
    let pip = preview_picture.map(|(w, h)| preview(width, height, w, h));
    (rects, pip)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 1280;
    const H: u32 = 720;

    #[test]
    fn one_participant_fills_the_screen() {
        let (r, pip) = layout(&[(1280, 720)], None, W, H);
        assert_eq!(
            r,
            vec![Rect {
                x: 0,
                y: 0,
                width: W,
                height: H
            }]
        );
        assert!(pip.is_none());
    }

    #[test]
    fn a_4_3_picture_is_pillarboxed_not_stretched() {
        let (r, _) = layout(&[(640, 480)], None, W, H);
        assert_eq!(
            r[0],
            Rect {
                x: 160,
                y: 0,
                width: 960,
                height: 720
            }
        );
    }

    #[test]
    fn two_sit_side_by_side_and_keep_their_shape() {
        let (r, _) = layout(&[(1280, 720), (1280, 720)], None, W, H);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].width, 640);
        assert_eq!(r[0].height, 360);
        assert_eq!(r[0].y, 180);
        assert_eq!(r[1].x, 640);
        assert!(!r[0].contains(r[1].centre().0, r[1].centre().1));
    }

    #[test]
    fn three_and_four_use_the_grid_and_never_overlap() {
        for n in 3..=4 {
            let pics = vec![(1280, 720); n];
            let (r, _) = layout(&pics, None, W, H);
            assert_eq!(r.len(), n);
            for (i, a) in r.iter().enumerate() {
                assert!(a.width == 640 && a.height == 360, "{a:?}");
                for (j, b) in r.iter().enumerate() {
                    if i != j {
                        assert!(!a.contains(b.centre().0, b.centre().1), "{a:?} {b:?}");
                    }
                }
            }
        }
        let (three, _) = layout(&[(1280, 720); 3], None, W, H);
        assert_eq!(three[2].x, 320, "the third is centred in the bottom row");
    }

    #[test]
    fn more_than_four_shows_four() {
        let (r, _) = layout(&[(640, 480); 6], None, W, H);
        assert_eq!(r.len(), MAX_PARTICIPANTS);
    }

    #[test]
    fn the_preview_sits_bottom_right_inside_the_screen() {
        let (_, pip) = layout(&[(1280, 720)], Some((640, 480)), W, H);
        let p = pip.expect("preview");
        assert_eq!(p.width, 320);
        assert_eq!(p.height, 240);
        assert_eq!(p.x + p.width as i32, (W - H / 40) as i32);
        assert_eq!(p.y + p.height as i32, (H - H / 40) as i32);
    }

    #[test]
    fn unknown_picture_sizes_fill_their_cell_and_odd_sizes_are_made_even() {
        let cell = Rect {
            x: 0,
            y: 0,
            width: 641,
            height: 361,
        };
        assert_eq!(fit(cell, 0, 0), cell);
        let r = fit(cell, 1280, 720);
        assert_eq!(r.width % 2, 0);
        assert_eq!(r.height % 2, 0);
    }
}

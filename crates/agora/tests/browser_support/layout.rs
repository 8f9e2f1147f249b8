//! Agora's pages laid out at a phone's width (400 px, and 320 px) and on a desktop
//! (1280 px): nothing may make a page scroll sideways, the header's Search button (and an
//! install box's Copy button) must be whole on screen; [`at_phone_and_desktop`]
//! screenshots each page at both widths (`phone-*.png`, `desktop-*.png`).

use super::Page;

/// The widths pages are laid out at: a phone, a small phone, a desktop window.
pub const PHONE: (u32, u32) = (400, 860);
pub const SMALL_PHONE: (u32, u32) = (320, 640);
pub const DESKTOP: (u32, u32) = super::VIEWPORT;

/// Fails unless the page fits the window's width: `document.documentElement.scrollWidth
/// <= window.innerWidth`, naming the elements that stick out when it does not.
pub async fn assert_no_sideways_scroll(page: &Page, what: &str) {
    let (scroll, inner): (u32, u32) = page
        .eval("[document.documentElement.scrollWidth, window.innerWidth]")
        .await;
    if scroll <= inner {
        return;
    }
    let culprits: Vec<String> = page
        .eval(
            "Array.from(document.querySelectorAll('body *'))\
             .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)\
             .filter(e => ['absolute', 'fixed'].includes(getComputedStyle(e).position) || (() => { \
               for (let a = e.parentElement; a; a = a.parentElement) \
                 if (getComputedStyle(a).overflowX !== 'visible') return false; return true; })())\
             .slice(0, 8).map(e => `${e.tagName.toLowerCase()}.${e.className} \
             (right edge ${Math.round(e.getBoundingClientRect().right)})`)",
        )
        .await;
    panic!(
        "{what}: the page is {scroll}px wide in a {inner}px window; sticking out: {culprits:#?}"
    );
}

/// Fails unless the element matching `selector`, scrolled into view, is whole inside the
/// window, not cut off by a scrolling or clipping ancestor, and not covered at its centre.
pub async fn assert_fully_visible(page: &Page, selector: &str, what: &str) {
    let sel = serde_json::to_string(selector).unwrap();
    let why: Option<String> = page
        .eval(&format!(
            r#"(() => {{
                const el = document.querySelector({sel});
                if (!el) return 'is missing';
                if (!el.checkVisibility()) return 'is not shown';
                el.scrollIntoView({{ block: 'center', inline: 'nearest' }});
                const r = el.getBoundingClientRect();
                const where = `${{Math.round(r.left)}}..${{Math.round(r.right)}} x ${{Math.round(r.top)}}..${{Math.round(r.bottom)}} in a ${{window.innerWidth}}x${{window.innerHeight}} window`;
                if (r.width === 0 || r.height === 0) return 'has no size';
                if (r.left < 0 || r.top < 0 || r.right > window.innerWidth || r.bottom > window.innerHeight)
                    return `is at ${{where}}`;
                for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {{
                    if (getComputedStyle(a).overflowX === 'visible') continue;
                    const b = a.getBoundingClientRect();
                    if (r.left < b.left - 0.5 || r.right > b.right + 0.5)
                        return `is cut off by <${{a.tagName.toLowerCase()}} class="${{a.className}}"> (${{where}})`;
                }}
                const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                if (!el.contains(hit)) return `is covered by ${{hit ? hit.outerHTML.slice(0, 120) : 'nothing'}}`;
                window.scrollTo(0, 0);
                return null;
            }})()"#
        ))
        .await;
    if let Some(why) = why {
        panic!("{what}: {selector} {why}");
    }
}

/// Fails unless the element matching `inner` lies within the box of the nearest ancestor
/// matching `outer` (text that would spill out of its card).
pub async fn assert_inside(page: &Page, inner: &str, outer: &str, what: &str) {
    let js = format!(
        "(() => {{ const el = document.querySelector({i}); if (!el) return 'missing'; \
         const box = el.closest({o}); if (!box) return 'not inside {outer}'; \
         const r = el.getBoundingClientRect(), b = box.getBoundingClientRect(); \
         return r.left >= b.left - 0.5 && r.right <= b.right + 0.5 ? null : \
         `spans ${{Math.round(r.left)}}..${{Math.round(r.right)}}, its box ${{Math.round(b.left)}}..${{Math.round(b.right)}}`; }})()",
        i = serde_json::to_string(inner).unwrap(),
        o = serde_json::to_string(outer).unwrap(),
    );
    if let Some(why) = page.eval::<Option<String>>(&js).await {
        panic!("{what}: {inner} {why}");
    }
}

/// The page at `url` at a phone's width (400 px, then 320 px) and on a desktop: it never
/// scrolls sideways, the header's Search button (and the Copy button, where there is an
/// install box) is whole on screen; screenshots `phone-NAME` and `desktop-NAME`. Leaves
/// the tab at desktop size on the page. Problems the page logs are left to the caller.
pub async fn at_phone_and_desktop(page: &Page, url: &str, name: &str) {
    for (width, height) in [PHONE, SMALL_PHONE, DESKTOP] {
        page.set_viewport(width, height).await;
        page.goto(url).await;
        let what = format!("{name} at {width}px");
        assert_no_sideways_scroll(page, &what).await;
        assert_fully_visible(page, ".searchbox button[type=submit]", &what).await;
        if page.exists(".copyable").await {
            assert_fully_visible(page, "button.copy", &what).await;
        }
        if (width, height) == PHONE {
            page.screenshot(&format!("phone-{name}")).await;
        } else if (width, height) == DESKTOP {
            page.screenshot(&format!("desktop-{name}")).await;
        }
    }
}

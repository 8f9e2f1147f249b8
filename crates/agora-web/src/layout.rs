//! The frame every page extends (`templates/base.html`): site name, title, who is signed
//! in, the CSRF token its forms carry, and the fingerprinted asset paths.

use crate::assets::{CSS_PATH, JS_PATH};

/// What the frame of every page shows.
pub struct Layout {
    pub site: String,
    pub title: String,
    pub user: Option<String>,
    pub is_admin: bool,
    pub csrf: String,
    pub css: &'static str,
    pub js: &'static str,
    /// The search box's text.
    pub q: String,
}

impl Layout {
    /// The frame as a signed-out visitor sees it (the visitor's own frame is
    /// `Visitor::layout`).
    pub fn signed_out(site: impl Into<String>, title: impl Into<String>) -> Layout {
        Layout {
            site: site.into(),
            title: title.into(),
            user: None,
            is_admin: false,
            csrf: String::new(),
            css: CSS_PATH.as_str(),
            js: JS_PATH.as_str(),
            q: String::new(),
        }
    }
}

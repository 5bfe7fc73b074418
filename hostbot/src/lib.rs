//! hostbot: see README.md

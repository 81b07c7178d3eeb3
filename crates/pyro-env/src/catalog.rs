//! The curated environments.

use crate::EnvError;

/// Version of the catalog as a whole.
pub const CATALOG_VERSION: &str = "1.0.0";
/// Debian suite every environment is built from.
pub const SUITE: &str = "bookworm";

/// One environment pyro can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Name users type, e.g. `debian:12`.
    pub name: &'static str,
    /// Version of this environment's recipe; part of its cache directory.
    pub version: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Packages users can count on.
    pub default_packages: &'static [&'static str],
    /// Distribution name.
    pub distribution: &'static str,
    /// Distribution version.
    pub distribution_version: &'static str,
}

/// Packages every environment gets beyond its default set: the kernel
/// (so kernel and modules match) and TLS roots.
pub const SYSTEM_PACKAGES: &[&str] = &["linux-image-cloud-amd64", "ca-certificates"];

/// All environments, sorted by name.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "debian:12",
        version: "1.0.0",
        description: "Debian 12 (bookworm) with bash, coreutils and git",
        default_packages: &["bash", "coreutils", "git"],
        distribution: "debian",
        distribution_version: "12",
    },
    CatalogEntry {
        name: "debian:12-base",
        version: "1.0.0",
        description: "Minimal Debian 12 (bookworm) with bash and coreutils",
        default_packages: &["bash", "coreutils"],
        distribution: "debian",
        distribution_version: "12",
    },
    CatalogEntry {
        name: "debian:12-build",
        version: "1.0.0",
        description: "Debian 12 (bookworm) with git, gcc, make, cmake and python3",
        default_packages: &[
            "bash",
            "coreutils",
            "git",
            "gcc",
            "make",
            "cmake",
            "python3",
        ],
        distribution: "debian",
        distribution_version: "12",
    },
];

/// Looks an environment up by name.
pub fn find(name: &str) -> Result<&'static CatalogEntry, EnvError> {
    CATALOG
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| EnvError::Unknown {
            name: name.to_string(),
            valid: CATALOG
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl CatalogEntry {
    /// Directory name in the cache: `debian_12-build-1.0.0`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name.replace(':', "_"), self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_lists_every_name() {
        let err = find("ubuntu").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown environment 'ubuntu'; expected one of: debian:12, debian:12-base, debian:12-build"
        );
    }

    #[test]
    fn catalog_is_sorted_and_dir_names_unique() {
        let names: Vec<_> = CATALOG.iter().map(|e| e.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let mut dirs: Vec<_> = CATALOG.iter().map(|e| e.dir_name()).collect();
        dirs.dedup();
        assert_eq!(dirs.len(), CATALOG.len());
    }
}

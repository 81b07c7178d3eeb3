//! Which protocol features this agent advertises and serves.
//!
//! Normally all of [`pyro_proto::features::ALL`]. For upgrade tests the host
//! can turn some off with `pyro.disable_features=a,b` on the kernel command
//! line (or `--disable-features a,b` with `--listen-unix`): the agent then
//! behaves like an older one, neither listing them in its `Hello` nor
//! serving them (requests for them are answered `unsupported`, exactly like
//! an operation it does not know).

use pyro_proto::{features, Hello, Message, Request};

/// Kernel command line option naming features to turn off.
const CMDLINE_OPTION: &str = "pyro.disable_features";

/// The features this agent serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    enabled: Vec<&'static str>,
}

impl Features {
    /// Everything this build supports.
    pub fn all() -> Self {
        Features {
            enabled: features::ALL.to_vec(),
        }
    }

    /// Everything but `disabled` (names this build does not know are
    /// ignored).
    pub fn without<S: AsRef<str>>(disabled: &[S]) -> Self {
        let off = |f: &&str| disabled.iter().any(|d| d.as_ref() == *f);
        Features {
            enabled: features::ALL.iter().copied().filter(|f| !off(f)).collect(),
        }
    }

    /// Whether `feature` is served.
    pub fn supports(&self, feature: &str) -> bool {
        self.enabled.contains(&feature)
    }

    /// The first feature `request` needs that is not served.
    pub fn missing(&self, request: &Request) -> Option<&'static str> {
        request
            .required_features()
            .iter()
            .copied()
            .find(|f| !self.supports(f))
    }

    /// Names turned off, for the boot log.
    pub fn disabled(&self) -> Vec<&'static str> {
        features::ALL
            .iter()
            .copied()
            .filter(|f| !self.supports(f))
            .collect()
    }

    /// The agent's `Hello`, listing what it serves.
    pub fn hello(&self) -> Message {
        Message::Hello(Hello::new(
            format!("pyro-agent {}", env!("CARGO_PKG_VERSION")),
            &self.enabled,
        ))
    }
}

/// Feature names listed by every `pyro.disable_features=a,b` word of a
/// kernel command line, in order. Empty names are skipped.
pub fn disabled_in_cmdline(cmdline: &str) -> Vec<String> {
    cmdline
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
        .filter(|(key, _)| *key == CMDLINE_OPTION)
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_parsing() {
        assert!(disabled_in_cmdline("").is_empty());
        assert!(disabled_in_cmdline("console=ttyS0 pyro.root=/dev/vda quiet").is_empty());
        assert_eq!(
            disabled_in_cmdline("console=ttyS0 pyro.disable_features=exec,extract pyro.net=1\n"),
            ["exec", "extract"]
        );
        assert_eq!(
            disabled_in_cmdline(
                "pyro.disable_features=ping,, pyro.disable_features=raw_bench \
                 pyro.disable_features= xpyro.disable_features=exec pyro.disable_features"
            ),
            ["ping", "raw_bench"]
        );
    }

    #[test]
    fn disabled_features_are_neither_served_nor_advertised() {
        let f = Features::without(&disabled_in_cmdline(
            "quiet pyro.disable_features=extract,teleport",
        ));
        assert!(!f.supports(features::EXTRACT));
        assert!(f.supports(features::EXEC));
        assert_eq!(f.disabled(), [features::EXTRACT]);
        assert_eq!(
            f.missing(&Request::Extract {
                dest: "/".into(),
                any_link_targets: false
            }),
            Some(features::EXTRACT)
        );
        assert_eq!(f.missing(&Request::Ping), None);
        let Message::Hello(h) = f.hello() else {
            panic!("not a hello");
        };
        pyro_proto::check_peer_hello(&h).unwrap();
        assert!(!h.supports(features::EXTRACT));
        assert!(h.supports(features::EXEC));
        assert_eq!(h.features.len(), features::ALL.len() - 1);
    }

    #[test]
    fn a_direct_exec_also_needs_direct_output() {
        let f = Features::without(&[features::DIRECT_OUTPUT]);
        let mut req = pyro_proto::ExecRequest {
            argv: vec!["true".into()],
            env: vec![],
            cwd: None,
            timeout_ms: None,
            direct_output: false,
            output_token: None,
        };
        assert_eq!(f.missing(&Request::Exec(req.clone())), None);
        req.direct_output = true;
        req.output_token = Some(3);
        assert_eq!(
            f.missing(&Request::Exec(req)),
            Some(features::DIRECT_OUTPUT)
        );
        assert_eq!(Features::all().disabled(), Vec::<&str>::new());
    }
}

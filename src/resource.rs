//! The resource: who is sending. Built in the process that exports (after a fork, again in the
//! child, so `process.pid` is the worker's own).

use crate::config::Config;
use crate::span::{Attributes, Value};

/// Facts about the interpreter that only the Python side knows, passed in at start-up.
#[derive(Clone, Debug, Default)]
pub struct Runtime {
    pub name: String,
    pub version: String,
    pub description: String,
    pub executable: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resource {
    pub attributes: Attributes,
}

impl Resource {
    /// Detected attributes first; `OTEL_RESOURCE_ATTRIBUTES` overrides them key by key;
    /// `OTEL_SERVICE_NAME` overrides `service.name`.
    pub fn build(config: &Config, runtime: &Runtime) -> Self {
        let mut attrs: Attributes = vec![
            ("service.name".into(), Value::Str("unknown_service:python".into())),
            ("telemetry.sdk.name".into(), "ferrotel".into()),
            ("telemetry.sdk.language".into(), "python".into()),
            ("telemetry.sdk.version".into(), env!("CARGO_PKG_VERSION").into()),
            ("process.pid".into(), Value::Int(std::process::id() as i64)),
            ("process.runtime.name".into(), runtime.name.as_str().into()),
            ("process.runtime.version".into(), runtime.version.as_str().into()),
            ("process.runtime.description".into(), runtime.description.as_str().into()),
            ("process.executable.path".into(), runtime.executable.as_str().into()),
        ];
        if let Some(host) = hostname() {
            attrs.push(("host.name".into(), host.into()));
        }
        if let Some(id) = container_id() {
            attrs.push(("container.id".into(), id.into()));
        }
        attrs.retain(|(_, v)| !matches!(v, Value::Str(s) if s.is_empty()));
        let mut set = |k: String, v: String| match attrs.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = Value::Str(v.into()),
            None => attrs.push((k.into(), Value::Str(v.into()))),
        };
        for (k, v) in &config.resource_attributes {
            set(k.clone(), v.clone());
        }
        if let Some(name) = &config.service_name {
            set("service.name".into(), name.clone());
        }
        // One per process unless the user (or the Operator) chose one: a forked worker builds its
        // resource in its own export thread, so it gets its own id.
        if !attrs.iter().any(|(k, _)| k == "service.instance.id") {
            attrs.push(("service.instance.id".into(), Value::Str(uuid_v4().into())));
        }
        Resource { attributes: attrs }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

fn uuid_v4() -> String {
    let (a, b) = (crate::context::SpanId::random().0, crate::context::SpanId::random().0);
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&a);
    u[8..].copy_from_slice(&b);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The container id, when running in one: from `/proc/self/cgroup` (a 64-hex-digit path segment,
/// as Docker, containerd and CRI-O name them; cgroup v1, or v2 seen from the host's cgroup
/// namespace), else from `/proc/self/mountinfo` (cgroup v2 with a private cgroup namespace, the
/// default of Docker and Podman on cgroup v2, where `/proc/self/cgroup` says only `0::/`).
fn container_id() -> Option<String> {
    let from_cgroup = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|t| container_id_from(&t));
    from_cgroup.or_else(|| container_id_from_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").ok()?))
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// The container id in a mountinfo text, found as the upstream container detectors do
/// (opentelemetry-java-instrumentation's `CgroupV2ContainerIdExtractor`): a CRI-O `crio-<id>`
/// or a containerd `cri-containerd:<id>` (or `-<id>.scope`) anywhere in a line; else the last
/// 64-hex-digit path segment of a mount whose source path holds a `containers` directory (the
/// files the runtime bind-mounts from the container's own directory: Docker's
/// `/var/lib/docker/containers/<id>/hostname`, Podman's
/// `.../overlay-containers/<id>/userdata/hostname`, nerdctl's `.../containers/<ns>/<id>/hostname`).
/// Only the mount's root (the fourth field) is read for the last rule: the root filesystem's
/// overlay options name image layers by 64-hex-digit ids too.
fn container_id_from_mountinfo(mountinfo: &str) -> Option<String> {
    let after = |line: &str, marker: &str| {
        line.match_indices(marker).find_map(|(i, _)| line.get(i + marker.len()..i + marker.len() + 64).filter(|id| is_id(id)).map(str::to_string))
    };
    for marker in ["/crio-", "cri-containerd:", "cri-containerd-"] {
        if let Some(id) = mountinfo.lines().find_map(|line| after(line, marker)) {
            return Some(id);
        }
    }
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(3))
        .filter(|root| root.contains("/containers/"))
        .flat_map(|root| root.split('/'))
        .filter(|seg| is_id(seg))
        .last()
        .map(str::to_string)
}

fn container_id_from(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        line.rsplit('/').flat_map(|seg| seg.split(['-', '.', ':'])).find(|part| part.len() == 64 && part.bytes().all(|c| c.is_ascii_hexdigit())).map(str::to_string)
    })
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_values_override_detected_ones() {
        let cfg = Config::from_lookup(|k| match k {
            "OTEL_RESOURCE_ATTRIBUTES" => Some("service.name=from-attrs,k8s.pod.name=p,service.instance.id=ns.p.c".into()),
            "OTEL_SERVICE_NAME" => Some("from-name".into()),
            _ => None,
        });
        let rt = Runtime { name: "cpython".into(), version: "3.11.7".into(), ..Default::default() };
        let r = Resource::build(&cfg, &rt);
        assert_eq!(r.get("service.name"), Some(&Value::Str("from-name".into())));
        assert_eq!(r.get("k8s.pod.name"), Some(&Value::Str("p".into())));
        assert_eq!(r.get("service.instance.id"), Some(&Value::Str("ns.p.c".into())));
        assert_eq!(r.get("process.pid"), Some(&Value::Int(std::process::id() as i64)));
        assert_eq!(r.get("telemetry.sdk.name"), Some(&Value::Str("ferrotel".into())));
        assert!(r.get("process.executable.path").is_none(), "empty values are left out");
    }

    #[test]
    fn container_ids_and_instance_ids() {
        let id = "a".repeat(64);
        assert_eq!(container_id_from(&format!("0::/system.slice/docker-{id}.scope")), Some(id.clone()));
        assert_eq!(container_id_from(&format!("12:pids:/kubepods/besteffort/pod1/{id}")), Some(id));
        assert_eq!(container_id_from("0::/user.slice/session-3.scope"), None);
        let r = Resource::build(&Config::from_lookup(|_| None), &Runtime::default());
        let Some(Value::Str(a)) = r.get("service.instance.id") else { panic!("no instance id") };
        assert_eq!(a.len(), 36);
        let again = Resource::build(&Config::from_lookup(|_| None), &Runtime::default());
        assert_ne!(again.get("service.instance.id"), r.get("service.instance.id"));
    }

    /// Mount tables as seen inside containers on cgroup v2 hosts with a private cgroup namespace
    /// (their `/proc/self/cgroup` is `0::/`). Ids and layer hashes made up, layout as the runtimes
    /// write it.
    #[test]
    fn container_id_from_mountinfo_of_each_runtime() {
        let id = "3c5a5e8f2b9d4e1f0a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b";
        let layer = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(container_id_from("0::/\n"), None, "a private cgroup namespace names no container");
        let docker = format!(
            "1301 1290 0:118 / / rw,relatime master:431 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/QWERTY:/var/lib/docker/overlay2/l/ASDFGH,upperdir=/var/lib/docker/overlay2/{layer}/diff,workdir=/var/lib/docker/overlay2/{layer}/work,nouserxattr
1302 1301 0:121 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1303 1301 0:122 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755,inode64
1306 1301 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot
1307 1303 0:117 / /dev/mqueue rw,nosuid,nodev,noexec,relatime - mqueue mqueue rw
1309 1301 254:1 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw,discard,errors=remount-ro
1310 1301 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw,discard,errors=remount-ro
1311 1301 254:1 /var/lib/docker/containers/{id}/hosts /etc/hosts rw,relatime - ext4 /dev/vda1 rw,discard,errors=remount-ro
1291 1303 0:120 /0 /dev/console rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620,ptmxmode=666
"
        );
        assert_eq!(container_id_from_mountinfo(&docker).as_deref(), Some(id));
        let podman = format!(
            "688 660 0:57 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/containers/storage/overlay/l/ZXCVBN,upperdir=/var/lib/containers/storage/overlay/{layer}/diff,workdir=/var/lib/containers/storage/overlay/{layer}/work,redirect_dir=nofollow,uuid=on,volatile
689 688 0:60 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
693 688 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
694 688 0:25 /containers/storage/overlay-containers/{id}/userdata/.containerenv /run/.containerenv rw,nosuid,nodev - tmpfs tmpfs rw,size=1623144k,nr_inodes=819200,mode=755,inode64
695 688 0:25 /containers/storage/overlay-containers/{id}/userdata/hostname /etc/hostname rw,nosuid,nodev - tmpfs tmpfs rw,size=1623144k,nr_inodes=819200,mode=755,inode64
696 688 0:25 /containers/storage/overlay-containers/{id}/userdata/hosts /etc/hosts rw,nosuid,nodev - tmpfs tmpfs rw,size=1623144k,nr_inodes=819200,mode=755,inode64
"
        );
        assert_eq!(container_id_from_mountinfo(&podman).as_deref(), Some(id), "not the image layer of the root overlay");
        let nerdctl = format!(
            "820 800 0:70 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs,upperdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/13/fs,workdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/13/work
826 820 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot
830 820 254:1 /var/lib/nerdctl/1935db59/containers/default/{id}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw
831 820 254:1 /var/lib/nerdctl/1935db59/etchosts/default/{id}/hosts /etc/hosts rw,relatime - ext4 /dev/vda1 rw
832 820 254:1 /var/lib/nerdctl/1935db59/containers/default/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw
"
        );
        assert_eq!(container_id_from_mountinfo(&nerdctl).as_deref(), Some(id));
        // Kubernetes on containerd with the cgroupfs driver names the container in the cgroup
        // mount's root; CRI-O in its scope.
        let cri = format!("1500 1400 0:26 /kubepods/burstable/pod0c6d3e2a/cri-containerd:{id} /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n");
        assert_eq!(container_id_from_mountinfo(&cri).as_deref(), Some(id));
        let crio = format!("1500 1400 0:26 /kubepods.slice/kubepods-pod1.slice/crio-{id}.scope /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n");
        assert_eq!(container_id_from_mountinfo(&crio).as_deref(), Some(id));
        // Outside a container: no id (a host's table names no container directory).
        let host = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard\n25 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n";
        assert_eq!(container_id_from_mountinfo(host), None);
        // Kubernetes' per-container files hold no id of the container itself.
        let kubelet = "900 880 254:1 /var/lib/kubelet/pods/6f1d2c3b-aaaa-bbbb-cccc-000000000001/containers/app/4c1e2a7f /dev/termination-log rw,relatime - ext4 /dev/vda1 rw\n";
        assert_eq!(container_id_from_mountinfo(kubelet), None);
    }

    #[test]
    fn default_service_name() {
        let r = Resource::build(&Config::from_lookup(|_| None), &Runtime::default());
        assert_eq!(r.get("service.name"), Some(&Value::Str("unknown_service:python".into())));
    }
}

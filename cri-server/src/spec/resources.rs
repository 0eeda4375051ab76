//! The OCI resources (CPU, memory, cpusets, unified cgroup v2 entries) of
//! a CRI resource request.

use k8s_cri::v1 as cri;
use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResources};

use crate::error::{spec_error, CriError, Result};

/// The OCI resources of a CRI resource request (CPU, memory, cpusets,
/// unified cgroup v2 entries; zero means unset).
pub fn linux_resources(r: &cri::LinuxContainerResources) -> Result<LinuxResources> {
    let mut resources = LinuxResources::default();
    let mut cpu = LinuxCpuBuilder::default();
    if r.cpu_shares > 0 {
        cpu = cpu.shares(r.cpu_shares as u64);
    }
    if r.cpu_quota != 0 {
        cpu = cpu.quota(r.cpu_quota);
    }
    if r.cpu_period > 0 {
        cpu = cpu.period(r.cpu_period as u64);
    }
    if !r.cpuset_cpus.is_empty() {
        cpu = cpu.cpus(r.cpuset_cpus.clone());
    }
    if !r.cpuset_mems.is_empty() {
        cpu = cpu.mems(r.cpuset_mems.clone());
    }
    resources.set_cpu(Some(cpu.build().map_err(spec_error)?));
    let mut memory = LinuxMemoryBuilder::default();
    if r.memory_limit_in_bytes > 0 {
        memory = memory.limit(r.memory_limit_in_bytes);
    }
    if r.memory_swap_limit_in_bytes > 0 {
        memory = memory.swap(r.memory_swap_limit_in_bytes);
    }
    resources.set_memory(Some(memory.build().map_err(spec_error)?));
    if !r.unified.is_empty() {
        resources.set_unified(Some(r.unified.clone()));
    }
    if !r.hugepage_limits.is_empty() {
        return Err(CriError::Unimplemented(
            "hugepage limits are not implemented".into(),
        ));
    }
    Ok(resources)
}

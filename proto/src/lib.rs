//! Generated code of gpt-load's gRPC services: the control plane (`WatchSnapshot`, worker status
//! reports) and the ops service used by `gpt-load ctl`. No logic lives here.

#![allow(clippy::all, clippy::pedantic, missing_docs, reason = "generated code")]

pub mod controlplane {
    pub mod v1 {
        tonic::include_proto!("gptload.controlplane.v1");
    }
}

pub mod ops {
    pub mod v1 {
        tonic::include_proto!("gptload.ops.v1");
    }
}

/// The encoded `FileDescriptorSet` of every service, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gptload_descriptor.bin"));

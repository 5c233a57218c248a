-- 002: unikernel (QEMU) components: a kernel boot (kernel + initrd + cmdline) besides the disk
-- image in `image`, image attestation, and the pinned SSH host key of the guest.
ALTER TABLE components ADD COLUMN kernel TEXT;         -- path, relative to the images dir or absolute inside an allowed dir
ALTER TABLE components ADD COLUMN initrd TEXT;
ALTER TABLE components ADD COLUMN cmdline TEXT;        -- extra kernel command line
ALTER TABLE components ADD COLUMN image_sha256 TEXT;   -- expected sha256 of the boot image (disk image, else kernel)
ALTER TABLE components ADD COLUMN ssh_host_key TEXT;   -- 'ssh-ed25519 AAAA...' or a .pub file in the images dir

//! Guest network setup for QEMU user-mode networking, done with ioctls so
//! the environment needs no iproute2.

use std::io;

// Addresses QEMU's user-mode network hands out by default.
const GUEST_ADDR: [u8; 4] = [10, 0, 2, 15];
const NETMASK: [u8; 4] = [255, 255, 255, 0];
const GATEWAY: [u8; 4] = [10, 0, 2, 2];
const DNS: &str = "10.0.2.3";

struct Sock(i32);

impl Drop for Sock {
    fn drop(&mut self) {
        // SAFETY: we own this fd.
        unsafe { libc::close(self.0) };
    }
}

fn sock() -> io::Result<Sock> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Sock(fd))
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

fn sockaddr_in(ip: [u8; 4]) -> libc::sockaddr {
    // SAFETY: sockaddr_in is plain data and fits in sockaddr.
    unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from_ne_bytes(ip);
        std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin)
    }
}

fn ioctl(s: &Sock, request: libc::c_ulong, arg: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: arg points at the structure the request expects.
    if unsafe { libc::ioctl(s.0, request, arg) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_up(s: &Sock, name: &str) -> io::Result<()> {
    let mut req = ifreq(name);
    ioctl(s, libc::SIOCGIFFLAGS, (&mut req as *mut libc::ifreq).cast())?;
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    ioctl(s, libc::SIOCSIFFLAGS, (&mut req as *mut libc::ifreq).cast())
}

/// Brings `lo` up; programs expect localhost to work.
pub fn bring_up_loopback() {
    if let Ok(s) = sock() {
        let _ = set_up(&s, "lo");
    }
}

/// Configures `eth0` for QEMU user-mode networking and writes resolv.conf.
pub fn configure_user_network() -> io::Result<()> {
    let s = sock()?;
    let mut req = ifreq("eth0");
    req.ifr_ifru.ifru_addr = sockaddr_in(GUEST_ADDR);
    ioctl(&s, libc::SIOCSIFADDR, (&mut req as *mut libc::ifreq).cast())?;
    let mut req = ifreq("eth0");
    req.ifr_ifru.ifru_netmask = sockaddr_in(NETMASK);
    ioctl(
        &s,
        libc::SIOCSIFNETMASK,
        (&mut req as *mut libc::ifreq).cast(),
    )?;
    set_up(&s, "eth0")?;
    // SAFETY: rtentry is plain data.
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr_in([0, 0, 0, 0]);
    route.rt_genmask = sockaddr_in([0, 0, 0, 0]);
    route.rt_gateway = sockaddr_in(GATEWAY);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    ioctl(
        &s,
        libc::SIOCADDRT,
        (&mut route as *mut libc::rtentry).cast(),
    )?;
    std::fs::write("/etc/resolv.conf", format!("nameserver {DNS}\n"))
}

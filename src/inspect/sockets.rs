//! Linux: the TCP addresses a process listens on, from its own descriptors
//! (`socket:[INODE]` in /proc/PID/fd) matched against the LISTEN rows of the
//! kernel's TCP tables as that process sees them (/proc/PID/net/tcp and
//! tcp6: its own network namespace, so a container's server is found in
//! its own tables, not ours).

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::procfs;

/// The `st` column of a listening socket (TCP_LISTEN).
const LISTEN: &str = "0A";

/// Every TCP address `pid` listens on, IPv4 then IPv6, each once, in the
/// tables' order. An error means its descriptors or tables could not be read.
pub fn listening(pid: u32) -> io::Result<Vec<SocketAddr>> {
    let inodes: HashSet<u64> = procfs::fds(pid)?
        .into_iter()
        .filter_map(|(_, target)| socket_inode(target.to_str()?))
        .collect();
    if inodes.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        match std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            Ok(text) => {
                for addr in listeners(&text, &inodes) {
                    if !out.contains(&addr) {
                        out.push(addr);
                    }
                }
            }
            // A kernel without IPv6 has no tcp6 table.
            Err(err) if err.kind() == io::ErrorKind::NotFound && table == "tcp6" => {}
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

/// Whether `pid` shares this process's network namespace, so that its
/// loopback is ours.
pub fn same_network(pid: u32) -> io::Result<bool> {
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net"))?;
    Ok(std::fs::read_link("/proc/self/ns/net")? == theirs)
}

/// The inode of a descriptor that is a socket: `socket:[12345]`.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The local addresses of the LISTEN rows of one table whose inode is in `inodes`.
fn listeners(table: &str, inodes: &HashSet<u64>) -> Vec<SocketAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (cols.get(1)?, cols.get(3)?, cols.get(9)?);
            if *state != LISTEN || !inodes.contains(&inode.parse().ok()?) {
                return None;
            }
            parse_address(local)
        })
        .collect()
}

/// `0100007F:0779` or `00000000000000000000000001000000:0779`: the address
/// is the kernel's bytes in network order, printed as 32-bit words in this
/// machine's byte order; the port is plain hex.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words = |hex: &str| -> Option<Vec<u8>> {
        (0..hex.len())
            .step_by(8)
            .map(|i| u32::from_str_radix(hex.get(i..i + 8)?, 16).ok())
            .collect::<Option<Vec<u32>>>()
            .map(|ws| ws.iter().flat_map(|w| w.to_ne_bytes()).collect())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(words(ip)?).ok()?)),
        32 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(words(ip)?).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Rows as a little-endian Linux prints them.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0779 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0779 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   3: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0779 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0
";

    #[test]
    #[cfg(target_endian = "little")]
    fn only_the_processs_own_listening_sockets() {
        let ours: HashSet<u64> = [111, 222, 444, 555].into();
        assert_eq!(
            listeners(TCP, &ours),
            vec![
                "127.0.0.1:1913".parse::<SocketAddr>().unwrap(),
                "0.0.0.0:8080".parse().unwrap()
            ]
        );
        assert_eq!(
            listeners(TCP6, &ours),
            vec![
                "[::1]:1913".parse::<SocketAddr>().unwrap(),
                "[::]:8081".parse().unwrap()
            ]
        );
        assert!(listeners(TCP, &[333].into()).contains(&"127.0.0.1:22".parse().unwrap()));
        assert!(listeners(TCP, &[999].into()).is_empty());
    }

    #[test]
    fn garbage_rows_are_skipped() {
        let ours: HashSet<u64> = [1].into();
        for table in [
            "",
            "header\n",
            "h\n 0: zz:0779 x 0A a b c d e 1\n",
            "h\n 0: 0100007F 0A\n",
        ] {
            assert!(listeners(table, &ours).is_empty(), "{table:?}");
        }
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
        assert_eq!(socket_inode("/srv/socket:[1]"), None);
    }

    #[test]
    fn this_process_listening_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let found = listening(std::process::id()).unwrap();
        assert!(found.contains(&listener.local_addr().unwrap()), "{found:?}");
    }
}

package redistest

import "syscall"

// dieWithParent kills the server when the test binary dies, so a crashed
// test leaves no redis-server behind.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// Package slapdtest runs a real OpenLDAP server (Debian's slapd) for
// tests, in the manner of net/http/httptest: New starts slapd on loopback
// ports with a generated configuration and directory, and the test's
// cleanup stops it and removes its files.
//
// The server has one mdb database for DefaultBaseDN with the core, cosine,
// inetorgperson and nis schemas, listens with ldap:// (StartTLS offered)
// and ldaps:// under a certificate from a CA generated for the run
// (CAFile), and lets only the service account BindDN read: anonymous
// searches find nothing. Its size limit (WithSizeLimit, 10 by default)
// caps searches that are not paged, while paged searches (RFC 2696) may
// return any number of entries, so a client that forgets to page fails.
//
//	srv := slapdtest.New(t, slapdtest.WithDirectory(slapdtest.Generate(30)))
//	cfg.URL, cfg.CAFile = srv.LDAPSURL, srv.CAFile
//	cfg.BindDN, cfg.BindPassword = srv.BindDN, config.Secret(srv.BindPassword)
//
// slapd and slapadd come from Debian's packages:
//
//	apt-get install -y slapd ldap-utils
//
// Without them New skips the test, or fails it when the environment has
// CI=true, so that CI cannot pass by skipping.
package slapdtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

// Server is a running slapd.
type Server struct {
	URL      string // ldap://127.0.0.1:<port>; StartTLS is offered
	LDAPSURL string // ldaps://127.0.0.1:<port>
	CAFile   string // PEM of the CA that signed the server's certificate (for 127.0.0.1 and localhost)
	BaseDN   string

	// BindDN may read the whole directory; BindPassword is its password.
	BindDN       string
	BindPassword string
	// AdminDN (the rootdn) may write; see AdminConn.
	AdminDN       string
	AdminPassword string

	Directory *Directory

	dir     string
	cmd     *exec.Cmd
	done    chan struct{}
	stderr  *lockedBuffer
	stopped sync.Once
}

type config struct {
	dir       *Directory
	sizeLimit int
	prTotal   int // 0: unlimited
}

// Option configures a Server.
type Option func(*config)

// WithDirectory loads d instead of Generate(24).
func WithDirectory(d *Directory) Option { return func(c *config) { c.dir = d } }

// WithSizeLimit sets the limit on entries a search that is not paged may
// return (slapd's sizelimit); 10 by default.
func WithSizeLimit(n int) Option { return func(c *config) { c.sizeLimit = n } }

// WithPagedSizeLimit limits the entries a paged search may return in all
// (slapd's size.prtotal; unlimited by default): past it the search ends
// with result code 4, sizeLimitExceeded.
func WithPagedSizeLimit(n int) Option { return func(c *config) { c.prTotal = n } }

// Binaries says where slapd and slapadd are, or why they cannot be used.
func Binaries() (slapd, slapadd string, err error) {
	find := func(name string) (string, error) {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/libexec"} {
			p := filepath.Join(dir, name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", fmt.Errorf("%s not found (install it: apt-get install -y slapd ldap-utils)", name)
	}
	if slapd, err = find("slapd"); err != nil {
		return "", "", err
	}
	if slapadd, err = find("slapadd"); err != nil {
		return "", "", err
	}
	return slapd, slapadd, nil
}

// New starts slapd with the directory and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	slapd, slapadd, err := Binaries()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("slapdtest: %v; CI must install slapd", err)
		}
		t.Skipf("slapdtest: %v", err)
	}
	c := config{sizeLimit: 10}
	for _, o := range opts {
		o(&c)
	}
	if c.dir == nil {
		c.dir = Generate(24)
	}
	if err := c.dir.Validate(); err != nil {
		t.Fatalf("slapdtest: directory: %v", err)
	}
	s, err := start(t.TempDir(), slapd, slapadd, c)
	if err != nil {
		t.Fatalf("slapdtest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func start(dir, slapd, slapadd string, c config) (*Server, error) {
	s := &Server{dir: dir, Directory: c.dir, BaseDN: c.dir.base(), AdminDN: "cn=admin," + c.dir.base(),
		BindDN: "cn=groupsync,ou=services," + c.dir.base(), done: make(chan struct{}), stderr: &lockedBuffer{}}
	s.AdminPassword, s.BindPassword = randomHex(), randomHex()
	if err := writeCerts(dir); err != nil {
		return nil, err
	}
	s.CAFile = filepath.Join(dir, "ca.pem")
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(conf, []byte(s.slapdConf(c)), 0o600); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data.ldif")
	if err := os.WriteFile(data, []byte(c.dir.ldif(s.BindDN, s.BindPassword)), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(slapadd, "-f", conf, "-l", data, "-q").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("slapadd: %v: %s", err, bytes.TrimSpace(out))
	}
	// Ports: taken from the kernel and released just before slapd binds
	// them; on the rare collision, try again.
	var lastErr error
	for range 5 {
		p1, p2, err := freePorts()
		if err != nil {
			return nil, err
		}
		s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", p1)
		s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", p2)
		if lastErr = s.run(slapd, conf, p1, p2); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func (s *Server) slapdConf(c config) string {
	schemaDir := "/etc/ldap/schema"
	if _, err := os.Stat(schemaDir); err != nil {
		schemaDir = "/etc/openldap/schema"
	}
	var b strings.Builder
	for _, sc := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&b, "include %s/%s.schema\n", schemaDir, sc)
	}
	fmt.Fprintf(&b, "pidfile %s\n", filepath.Join(s.dir, "slapd.pid"))
	for _, modDir := range []string{"/usr/lib/ldap", "/usr/lib/openldap", "/usr/lib64/openldap"} {
		if _, err := os.Stat(filepath.Join(modDir, "back_mdb.la")); err == nil {
			fmt.Fprintf(&b, "modulepath %s\nmoduleload back_mdb\n", modDir)
			break
		}
	}
	fmt.Fprintf(&b, "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n",
		filepath.Join(s.dir, "ca.pem"), filepath.Join(s.dir, "server.pem"), filepath.Join(s.dir, "server.key"))
	// The soft and hard limits stop searches that are not paged; paged
	// ones may return everything (size.prtotal).
	prTotal := "unlimited"
	if c.prTotal > 0 {
		prTotal = fmt.Sprint(c.prTotal)
	}
	fmt.Fprintf(&b, "sizelimit size.soft=%d size.hard=%d size.prtotal=%s\n", c.sizeLimit, c.sizeLimit, prTotal)
	fmt.Fprintf(&b, "database mdb\nmaxsize 67108864\nsuffix %q\nrootdn %q\nrootpw %s\ndirectory %s\n",
		s.BaseDN, s.AdminDN, s.AdminPassword, filepath.Join(s.dir, "db"))
	fmt.Fprintf(&b, "access to attrs=userPassword by anonymous auth by * none\n")
	fmt.Fprintf(&b, "access to * by dn.exact=%q read by * none\n", s.BindDN)
	return b.String()
}

func (s *Server) run(slapd, conf string, p1, p2 int) error {
	urls := fmt.Sprintf("ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", p1, p2)
	// -d keeps slapd in the foreground, so it dies with the test binary's
	// cleanup and its messages land in stderr.
	cmd := exec.Command(slapd, "-f", conf, "-h", urls, "-d", "0")
	s.stderr = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start slapd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("slapd exited at start: %s", strings.TrimSpace(s.stderr.String()))
		default:
		}
		c1, err1 := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p1), 200*time.Millisecond)
		c2, err2 := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p2), 200*time.Millisecond)
		for _, c := range []net.Conn{c1, c2} {
			if c != nil {
				c.Close()
			}
		}
		if err1 == nil && err2 == nil {
			s.cmd, s.done = cmd, done
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("slapd did not listen within 15s: %s", strings.TrimSpace(s.stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends slapd (SIGTERM, then SIGKILL after 5s). Later connections are
// refused; the test's cleanup calls it too.
func (s *Server) Stop() {
	s.stopped.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

// Log returns what slapd printed (its errors), for a failing test.
func (s *Server) Log() string { return s.stderr.String() }

// AdminConn returns a connection bound as the rootdn, for tests that
// change the directory; it is closed when the test ends.
func (s *Server) AdminConn(t testing.TB) *goldap.Conn {
	t.Helper()
	conn, err := goldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("slapdtest: dial: %v", err)
	}
	if err := conn.Bind(s.AdminDN, s.AdminPassword); err != nil {
		conn.Close()
		t.Fatalf("slapdtest: bind as admin: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func freePorts() (int, int, error) {
	var ports [2]int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

func randomHex() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

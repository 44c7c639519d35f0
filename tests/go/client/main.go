// Command client is an idprov device written in Go with the standard library
// only, for interoperability tests of the Rust server: it behaves as a Go
// idprov device does — its message structs and key names, HMAC signing with
// the raw secret over encoding/json's output, Go's TLS stack with
// client-certificate selection by the server's acceptable CAs and IP-SAN
// checks, and []byte fields decoded from base64.
//
// It was written for this repository from the protocol description.
//
// Usage:
//
//	client -server HOST:PORT -id ID -dir DIR [-secret S] provision|renew|status
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

type endpoints struct {
	Directory            string `json:"directory"`
	Status               string `json:"status"`
	PostOobSecret        string `json:"postOobSecret"`
	PostProvisionRequest string `json:"postProvisionRequest"`
}

// directory: caCert is a []byte, so encoding/json decodes its base64.
type directory struct {
	Endpoints endpoints         `json:"endpoints"`
	CaCert    []byte            `json:"caCert"`
	Version   string            `json:"version"`
	Services  map[string]string `json:"services"`
}

type provisionRequest struct {
	DeviceID     string `json:"deviceID"`
	IP           string `json:"ip"`
	MAC          string `json:"mac"`
	PublicKeyPEM string `json:"publicKeyPEM"`
	Signature    string `json:"signature"`
}

type provisionResponse struct {
	RetrySec   int    `json:"retrySec,omitempty"`
	Status     string `json:"status"`
	CaCert     string `json:"caCert"`
	ClientCert string `json:"clientCert"`
	Signature  string `json:"signature"`
}

// status: clientCert is a []byte (base64 on the wire, or null).
type status struct {
	DeviceID   string `json:"deviceID"`
	Status     string `json:"status"`
	CaCert     string `json:"caCert"`
	ClientCert []byte `json:"clientCert"`
}

func sign(secret string, msg []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(msg)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "go client: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	server := flag.String("server", "", "HOST:PORT")
	id := flag.String("id", "", "device ID")
	secret := flag.String("secret", "", "OOB secret")
	dir := flag.String("dir", "", "credential directory")
	flag.Parse()
	if *server == "" || *id == "" || *dir == "" || flag.NArg() != 1 {
		die("usage: client -server HOST:PORT -id ID -dir DIR [-secret S] provision|renew|status")
	}
	base := "https://" + *server
	switch flag.Arg(0) {
	case "provision":
		provision(base, *id, *secret, *dir)
	case "renew":
		renew(base, *id, *dir)
	case "status":
		showStatus(base, *id, *dir)
	default:
		die("unknown command %q", flag.Arg(0))
	}
}

func caPool(dir string) *x509.CertPool {
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		die("reading the CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		die("no CA certificate in ca.pem")
	}
	return pool
}

// client verifies the server against the pinned CA (and its IP SAN, since
// the server is addressed by IP), and presents the device certificate when
// the server's acceptable CAs include its issuer.
func client(dir string, withCert bool) *http.Client {
	cfg := &tls.Config{RootCAs: caPool(dir), MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		if err != nil {
			die("loading the device certificate: %v", err)
		}
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if err := cri.SupportsCertificate(&cert); err != nil {
				return nil, fmt.Errorf("the server does not accept our certificate's issuer: %w", err)
			}
			return &cert, nil
		}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func readBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		die("reading the answer: %v", err)
	}
	if resp.StatusCode >= 400 {
		die("HTTP %d: %s", resp.StatusCode, b)
	}
	return b
}

func provision(base, id, secret, dir string) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		die("%v", err)
	}
	// First contact: the CA is not known yet, so the server is not verified;
	// nothing signed is sent on this connection.
	first := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	resp, err := first.Get(base + "/idprov/directory")
	if err != nil {
		die("directory: %v", err)
	}
	var d directory
	if err := json.Unmarshal(readBody(resp), &d); err != nil {
		die("decoding the directory: %v", err)
	}
	if !bytes.HasPrefix(d.CaCert, []byte("-----BEGIN CERTIFICATE-----")) {
		die("caCert did not decode to PEM")
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), d.CaCert, 0o644); err != nil {
		die("%v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		die("%v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		die("%v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		die("%v", err)
	}
	ans := post(client(dir, false), base+d.Endpoints.PostProvisionRequest, id, &key.PublicKey, secret)
	finish(ans, secret, dir)
}

func renew(base, id, dir string) {
	keyPEM, err := os.ReadFile(filepath.Join(dir, "key.pem"))
	if err != nil {
		die("%v", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		die("key.pem holds no PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		die("%v", err)
	}
	key := k.(*ecdsa.PrivateKey)
	// A Go client holding a certificate verifies the answer with the empty key.
	ans := post(client(dir, true), base+"/idprov/provreq", id, &key.PublicKey, "")
	finish(ans, "", dir)
}

func post(c *http.Client, url, id string, pub *ecdsa.PublicKey, secret string) provisionResponse {
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		die("%v", err)
	}
	req := provisionRequest{
		DeviceID:     id,
		IP:           "<nil>",
		MAC:          "02:00:00:00:00:42",
		PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})),
	}
	if secret != "" {
		msg, _ := json.Marshal(req)
		req.Signature = sign(secret, msg)
	}
	body, _ := json.Marshal(req)
	// Like the Go reference, no Content-Type is set.
	hreq, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	resp, err := c.Do(hreq)
	if err != nil {
		die("provreq: %v", err)
	}
	var ans provisionResponse
	if err := json.Unmarshal(readBody(resp), &ans); err != nil {
		die("decoding the answer: %v", err)
	}
	return ans
}

func finish(ans provisionResponse, key, dir string) {
	if ans.Status != "Approved" {
		fmt.Printf("%s %d\n", ans.Status, ans.RetrySec)
		return
	}
	sig := ans.Signature
	ans.Signature = ""
	msg, _ := json.Marshal(ans)
	if !hmac.Equal([]byte(sign(key, msg)), []byte(sig)) {
		die("the Approved answer's signature does not verify")
	}
	block, _ := pem.Decode([]byte(ans.ClientCert))
	if block == nil {
		die("clientCert holds no PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		die("%v", err)
	}
	if ans.CaCert == "" {
		die("an Approved answer without caCert")
	}
	must(os.WriteFile(filepath.Join(dir, "cert.pem"), []byte(ans.ClientCert), 0o644))
	must(os.WriteFile(filepath.Join(dir, "ca.pem"), []byte(ans.CaCert), 0o644))
	fmt.Printf("Approved %x %s %d\n", cert.SerialNumber, cert.Subject.CommonName, ans.RetrySec)
}

func showStatus(base, id, dir string) {
	resp, err := client(dir, true).Get(base + "/idprov/status/" + id)
	if err != nil {
		die("status: %v", err)
	}
	var s status
	if err := json.Unmarshal(readBody(resp), &s); err != nil {
		die("decoding the status: %v", err)
	}
	if s.ClientCert == nil {
		fmt.Printf("%s -\n", s.Status)
		return
	}
	block, _ := pem.Decode(s.ClientCert)
	if block == nil {
		die("clientCert did not decode to PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		die("%v", err)
	}
	fmt.Printf("%s %x\n", s.Status, cert.SerialNumber)
}

func must(err error) {
	if err != nil {
		die("%v", err)
	}
}

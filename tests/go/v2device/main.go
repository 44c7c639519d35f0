// Command v2device is an idprov v2 device written in Go with the standard
// library only: SPAKE2+ (RFC 9383, P256-SHA256-HKDF-SHA256-HMAC-SHA256) on
// crypto/elliptic's P-256 arithmetic, PBKDF2 and HKDF written out over
// crypto/hmac, Go's TLS 1.3 exporter, and Go's encoding/json for the signed
// request. It was written for this repository from RFC 9383 and
// docs/PROTOCOL.md §11, not from the Rust code, as an independent second
// implementation.
//
// Usage:
//
//	v2device -vectors
//	    checks RFC 9383's P256-SHA256 test vectors; prints "vectors ok"
//	v2device -server HOST:PORT -ca CA.pem -id ID -secret S -dir DIR
//	    provisions over idprov v2; prints "Approved SERIAL CN"
//	    (exit 2 when the server's confirmation does not verify)
package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
)

var curve = elliptic.P256()

// RFC 9383 §4: M and N for P-256, compressed SEC1.
const (
	mHex = "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f"
	nHex = "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49"
)

type point struct{ x, y *big.Int }

func die(code int, format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "go v2 device: "+format+"\n", a...)
	os.Exit(code)
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func fixed(h string) point {
	x, y := elliptic.UnmarshalCompressed(curve, unhex(h))
	if x == nil {
		panic("bad constant")
	}
	return point{x, y}
}

func encode(p point) []byte { return elliptic.Marshal(curve, p.x, p.y) }

func decode(b []byte) (point, bool) {
	if len(b) != 65 || b[0] != 4 {
		return point{}, false
	}
	x, y := elliptic.Unmarshal(curve, b)
	if x == nil {
		return point{}, false
	}
	return point{x, y}, true
}

func scalarBytes(k *big.Int) []byte {
	out := make([]byte, 32)
	k.FillBytes(out)
	return out
}

func mul(p point, k *big.Int) point {
	x, y := curve.ScalarMult(p.x, p.y, scalarBytes(k))
	return point{x, y}
}

func baseMul(k *big.Int) point {
	x, y := curve.ScalarBaseMult(scalarBytes(k))
	return point{x, y}
}

func add(a, b point) point {
	x, y := curve.Add(a.x, a.y, b.x, b.y)
	return point{x, y}
}

func neg(a point) point {
	return point{a.x, new(big.Int).Sub(curve.Params().P, a.y)}
}

func isIdentity(p point) bool { return p.x.Sign() == 0 && p.y.Sign() == 0 }

// lenPrefixed appends len(b) as 8 bytes little-endian, then b.
func lenPrefixed(out []byte, b []byte) []byte {
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(b)))
	return append(append(out, l[:]...), b...)
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// pbkdf2 is RFC 8018's PBKDF2 with HMAC-SHA256.
func pbkdf2(password, salt []byte, iterations, length int) []byte {
	var out []byte
	for block := uint32(1); len(out) < length; block++ {
		var ctr [4]byte
		binary.BigEndian.PutUint32(ctr[:], block)
		u := hmacSHA256(password, append(append([]byte{}, salt...), ctr[:]...))
		t := append([]byte{}, u...)
		for i := 1; i < iterations; i++ {
			u = hmacSHA256(password, u)
			for j := range t {
				t[j] ^= u[j]
			}
		}
		out = append(out, t...)
	}
	return out[:length]
}

// hkdf is RFC 5869's HKDF-SHA256 with no salt.
func hkdf(ikm []byte, info string, length int) []byte {
	prk := hmacSHA256(make([]byte, 32), ikm)
	var out, t []byte
	for i := byte(1); len(out) < length; i++ {
		t = hmacSHA256(prk, append(append(append([]byte{}, t...), info...), i))
		out = append(out, t...)
	}
	return out[:length]
}

type keys struct {
	confirmP, confirmV, shared []byte
}

// schedule is RFC 9383 §3.3–3.4: the transcript, K_main, the confirmation
// keys and messages, K_shared.
func schedule(context, idP, idV []byte, shareP, shareV, z, v []byte, w0 *big.Int) ([]byte, keys) {
	var tt []byte
	for _, part := range [][]byte{context, idP, idV, encode(fixed(mHex)), encode(fixed(nHex)), shareP, shareV, z, v, scalarBytes(w0)} {
		tt = lenPrefixed(tt, part)
	}
	main := sha256.Sum256(tt)
	ck := hkdf(main[:], "ConfirmationKeys", 64)
	return tt, keys{
		confirmP: hmacSHA256(ck[:32], shareV),
		confirmV: hmacSHA256(ck[32:], shareP),
		shared:   hkdf(main[:], "SharedKey", 32),
	}
}

func vectors() {
	n := curve.Params().N
	w0 := new(big.Int).SetBytes(unhex("bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3"))
	w1 := new(big.Int).SetBytes(unhex("7e945f34d78785b8a3ef44d0df5a1a97d6b3b460409a345ca7830387a74b1dba"))
	x := new(big.Int).SetBytes(unhex("d1232c8e8693d02368976c174e2088851b8365d0d79a9eee709c6a05a2fad539"))
	y := new(big.Int).SetBytes(unhex("717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3"))
	_ = n
	check := func(what string, got []byte, want string) {
		if !bytes.Equal(got, unhex(want)) {
			die(1, "vector %s: got %x, want %s", what, got, want)
		}
	}
	l := baseMul(w1)
	check("L", encode(l), "04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966efd")
	shareP := encode(add(baseMul(x), mul(fixed(mHex), w0)))
	check("shareP", shareP, "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727")
	shareV := encode(add(baseMul(y), mul(fixed(nHex), w0)))
	check("shareV", shareV, "04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048")
	// The prover's side.
	sv, _ := decode(shareV)
	unmaskedV := add(sv, neg(mul(fixed(nHex), w0)))
	z := encode(mul(unmaskedV, x))
	v := encode(mul(unmaskedV, w1))
	check("Z (prover)", z, "04bbfce7dd7f277819c8da21544afb7964705569bdf12fb92aa388059408d50091a0c5f1d3127f56813b5337f9e4e67e2ca633117a4fbd559946ab474356c41839")
	check("V (prover)", v, "0458bf27c6bca011c9ce1930e8984a797a3419797b936629a5a937cf2f11c8b9514b82b993da8a46e664f23db7c01edc87faa530db01c2ee405230b18997f16b68")
	// The verifier's side.
	sp, _ := decode(shareP)
	unmaskedP := add(sp, neg(mul(fixed(mHex), w0)))
	check("Z (verifier)", encode(mul(unmaskedP, y)), hex.EncodeToString(z))
	check("V (verifier)", encode(mul(l, y)), hex.EncodeToString(v))
	tt, k := schedule([]byte("SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors"), []byte("client"), []byte("server"), shareP, shareV, z, v, w0)
	main := sha256.Sum256(tt)
	check("K_main", main[:], "4c59e1ccf2cfb961aa31bd9434478a1089b56cd11542f53d3576fb6c2a438a29")
	ck := hkdf(main[:], "ConfirmationKeys", 64)
	check("K_confirmP", ck[:32], "871ae3f7b78445e34438fb284504240239031c39d80ac23eb5ab9be5ad6db58a")
	check("K_confirmV", ck[32:], "ccd53c7c1fa37b64a462b40db8be101cedcf838950162902054e644b400f1680")
	check("confirmP", k.confirmP, "926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527")
	check("confirmV", k.confirmV, "9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68")
	check("K_shared", k.shared, "0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7")
	fmt.Println("vectors ok")
}

// The messages of PROTOCOL.md §4 and §11, with encoding/json.
type provisionRequest struct {
	DeviceID     string `json:"deviceID"`
	IP           string `json:"ip"`
	MAC          string `json:"mac"`
	PublicKeyPEM string `json:"publicKeyPEM"`
	Signature    string `json:"signature"`
}

type finishRequest struct {
	DeviceID     string `json:"deviceID"`
	IP           string `json:"ip"`
	MAC          string `json:"mac"`
	PublicKeyPEM string `json:"publicKeyPEM"`
	ConfirmP     []byte `json:"confirmP"`
	Signature    string `json:"signature"`
}

type provisionResponse struct {
	RetrySec   int    `json:"retrySec,omitempty"`
	Status     string `json:"status"`
	CaCert     string `json:"caCert"`
	ClientCert string `json:"clientCert"`
	Signature  string `json:"signature"`
}

// conn is one TLS 1.3 connection; every request of a run goes over it.
type conn struct {
	tls    *tls.Conn
	reader *bufio.Reader
	host   string
}

func (c *conn) post(path string, body interface{}) (int, []byte) {
	data, err := json.Marshal(body)
	if err != nil {
		die(1, "encoding: %v", err)
	}
	req, _ := http.NewRequest("POST", "https://"+c.host+path, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	if err := req.Write(c.tls); err != nil {
		die(1, "sending %s: %v", path, err)
	}
	resp, err := http.ReadResponse(c.reader, req)
	if err != nil {
		die(1, "reading the answer to %s: %v", path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

func provision(server, caFile, id, secret, dir string) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		die(1, "reading the CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		die(1, "no CA certificate in %s", caFile)
	}
	// The issuing CA's fingerprint: SHA-256 of the first certificate's DER.
	block, _ := pem.Decode(caPEM)
	caFP := sha256.Sum256(block.Bytes)

	host, _, err := net.SplitHostPort(server)
	if err != nil {
		die(1, "server %q: %v", server, err)
	}
	t, err := tls.Dial("tcp", server, &tls.Config{
		RootCAs:    pool,
		ServerName: host,
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"http/1.1"},
	})
	if err != nil {
		die(1, "TLS: %v", err)
	}
	defer t.Close()
	c := &conn{tls: t, reader: bufio.NewReader(t), host: server}
	state := t.ConnectionState()
	exporter, err := state.ExportKeyingMaterial("EXPORTER-idprov-v2", nil, 32)
	if err != nil {
		die(1, "exporter: %v", err)
	}

	// §11.2: the KDF parameters.
	status, body := c.post("/idprov/v2/params", map[string]string{"deviceID": id})
	if status != 200 {
		die(1, "params: %d %s", status, body)
	}
	var params struct {
		Salt       []byte `json:"salt"`
		Iterations int    `json:"iterations"`
	}
	if err := json.Unmarshal(body, &params); err != nil {
		die(1, "params: %v", err)
	}
	if len(params.Salt) < 16 || len(params.Salt) > 64 || params.Iterations < 1000 || params.Iterations > 1000000 {
		die(1, "unacceptable KDF parameters")
	}
	// §11.1: w0s ‖ w1s = PBKDF2(len(pw) ‖ pw ‖ len(id) ‖ id ‖ len("") ‖ "").
	var input []byte
	input = lenPrefixed(input, []byte(secret))
	input = lenPrefixed(input, []byte(id))
	input = lenPrefixed(input, nil)
	out := pbkdf2(input, params.Salt, params.Iterations, 80)
	n := curve.Params().N
	w0 := new(big.Int).Mod(new(big.Int).SetBytes(out[:40]), n)
	w1 := new(big.Int).Mod(new(big.Int).SetBytes(out[40:]), n)

	// §11.3: shareP, bound to this connection.
	x, err := rand.Int(rand.Reader, n)
	if err != nil {
		die(1, "random: %v", err)
	}
	shareP := encode(add(baseMul(x), mul(fixed(mHex), w0)))
	status, body = c.post("/idprov/v2/start", map[string]interface{}{"deviceID": id, "shareP": shareP})
	if status != 200 {
		die(1, "start: %d %s", status, body)
	}
	var start struct {
		ShareV   []byte `json:"shareV"`
		ConfirmV []byte `json:"confirmV"`
	}
	if err := json.Unmarshal(body, &start); err != nil {
		die(1, "start: %v", err)
	}
	sv, ok := decode(start.ShareV)
	if !ok {
		die(1, "shareV is not a point of P-256")
	}
	unmasked := add(sv, neg(mul(fixed(nHex), w0)))
	if isIdentity(unmasked) {
		die(1, "degenerate shareV")
	}
	z := encode(mul(unmasked, x))
	v := encode(mul(unmasked, w1))
	context := append([]byte("idprov v2"), exporter...)
	_, k := schedule(context, []byte(id), caFP[:], shareP, start.ShareV, z, v, w0)
	if !hmac.Equal(k.confirmV, start.ConfirmV) {
		die(2, "the server's confirmation does not match: it does not hold this device's verifier, or the run was relayed")
	}

	// §11.4: confirmP and the request signed with K_request.
	kRequest := hkdf(k.shared, "idprov v2 request", 32)
	kAnswer := hkdf(k.shared, "idprov v2 answer", 32)
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		die(1, "key: %v", err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	req := provisionRequest{DeviceID: id, IP: "<nil>", MAC: "", PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))}
	canonical, _ := json.Marshal(req)
	signature := base64.StdEncoding.EncodeToString(hmacSHA256(kRequest, canonical))
	status, body = c.post("/idprov/v2/finish", finishRequest{
		DeviceID: req.DeviceID, IP: req.IP, MAC: req.MAC, PublicKeyPEM: req.PublicKeyPEM,
		ConfirmP: k.confirmP, Signature: signature,
	})
	if status != 200 {
		die(1, "finish: %d %s", status, body)
	}
	var answer provisionResponse
	if err := json.Unmarshal(body, &answer); err != nil {
		die(1, "answer: %v", err)
	}
	if answer.Status != "Approved" {
		die(1, "answer: %s", answer.Status)
	}
	got := answer.Signature
	answer.Signature = ""
	canonical, _ = json.Marshal(answer)
	want := base64.StdEncoding.EncodeToString(hmacSHA256(kAnswer, canonical))
	if !hmac.Equal([]byte(got), []byte(want)) {
		die(1, "the answer is not signed with K_answer")
	}
	cb, _ := pem.Decode([]byte(answer.ClientCert))
	if cb == nil {
		die(1, "no certificate in the answer")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		die(1, "certificate: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		die(1, "the certificate does not chain to the CA: %v", err)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		die(1, "the certificate is not for this device's key")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		die(1, "%v", err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	os.WriteFile(filepath.Join(dir, "cert.pem"), []byte(answer.ClientCert), 0o644)
	os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o644)
	fmt.Printf("Approved %x %s\n", cert.SerialNumber, cert.Subject.CommonName)
}

func main() {
	vec := flag.Bool("vectors", false, "check RFC 9383's test vectors")
	server := flag.String("server", "", "HOST:PORT")
	ca := flag.String("ca", "", "the CA chain (PEM)")
	id := flag.String("id", "", "device ID")
	secret := flag.String("secret", "", "the device's secret")
	dir := flag.String("dir", "", "credential directory")
	flag.Parse()
	if *vec {
		vectors()
		return
	}
	if *server == "" || *ca == "" || *id == "" || *secret == "" || *dir == "" {
		die(1, "usage: v2device -vectors | -server HOST:PORT -ca CA.pem -id ID -secret S -dir DIR")
	}
	provision(*server, *ca, *id, *secret, *dir)
}

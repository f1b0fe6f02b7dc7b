package httpx

import (
	"context"
	"net"
	"testing"
)

func TestListenWithReusePortLetsTwoListenersShareAPort(t *testing.T) {
	ctx := context.Background()
	a, err := Listen(ctx, "127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Listen(ctx, a.Addr().String(), true)
	if err != nil {
		t.Fatalf("second listener on %s: %v", a.Addr(), err)
	}
	defer b.Close()
	if a.Addr().String() != b.Addr().String() {
		t.Fatalf("bound %s and %s", a.Addr(), b.Addr())
	}
}

func TestListenWithoutReusePortRefusesABoundPort(t *testing.T) {
	ctx := context.Background()
	a, err := Listen(ctx, "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if b, err := Listen(ctx, a.Addr().String(), false); err == nil {
		b.Close()
		t.Fatal("second bind succeeded")
	}
}

func TestListenWithReusePortStillRefusesAPortBoundWithoutIt(t *testing.T) {
	ctx := context.Background()
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if b, err := Listen(ctx, a.Addr().String(), true); err == nil {
		b.Close()
		t.Fatal("bind succeeded next to a listener without SO_REUSEPORT")
	}
}

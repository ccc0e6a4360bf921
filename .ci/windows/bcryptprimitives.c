/*
 * A stand-in for Windows' bcryptprimitives.dll, for running the workspace's Windows tests under
 * Wine 8 (Debian 12), which lacks the DLL. Rust's std has imported `ProcessPrng` from it since
 * Rust 1.78, so without it every Rust program fails to start under that Wine.
 *
 * `ProcessPrng` fills the buffer from `SystemFunction036` (RtlGenRandom, in advapi32), which
 * Wine has. `cargo xtask windows` builds this file with mingw-w64 and puts the DLL into the
 * system32 folder of the Wine prefix it uses (never into a real Windows).
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}

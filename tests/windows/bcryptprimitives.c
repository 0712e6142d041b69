/* A stand-in for Windows' bcryptprimitives.dll, for running ovlock's Windows
 * build under Wine 8, which lacks it. Rust's std for Windows imports one
 * function from it, ProcessPrng (random bytes for HashMap seeds); this one
 * gets them from RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 * Built by tests/windows/run with x86_64-w64-mingw32-gcc and placed beside
 * the executables; never shipped, never committed as a binary. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG: hand it large requests in pieces. */
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

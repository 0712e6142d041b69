/* The Windows tests' stand-in for OpenViking: holds a file as OpenViking
 * 0.5.2 does on Windows, prints "ready <pid>" once it does, and keeps it
 * until its standard input closes. Copied under a name with "openviking"
 * in it to pass for OpenViking, or under another name to pass for anything
 * else.
 *
 *   holder lock PATH      .openviking.lock: os.open(O_CREAT|O_RDWR) and
 *                         msvcrt.locking(fd, LK_NBLCK, 1), byte 0 locked
 *   holder open PATH      the file merely open, nothing locked
 *   holder pidfile PATH   .openviking.pid: its own PID written, closed
 *   holder pathlock PATH  a path-lock file open and locked whole with
 *                         LockFileEx, as the engine's compare-and-swap does
 */
#include <windows.h>
#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <string.h>
#include <sys/locking.h>
#include <sys/stat.h>

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "holder: %s %s failed (errno %d, Windows error %lu)\n", what, path,
            errno, GetLastError());
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: holder lock|open|pidfile|pathlock PATH\n");
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    if (strcmp(mode, "lock") == 0 || strcmp(mode, "open") == 0) {
        int fd = _open(path, _O_CREAT | _O_RDWR | _O_BINARY | _O_NOINHERIT, _S_IREAD | _S_IWRITE);
        if (fd < 0)
            return fail("open", path);
        if (strcmp(mode, "lock") == 0 && _locking(fd, _LK_NBLCK, 1) != 0)
            return fail("locking", path);
    } else if (strcmp(mode, "pidfile") == 0) {
        FILE *f = fopen(path, "wb");
        if (!f)
            return fail("open", path);
        fprintf(f, "%lu", GetCurrentProcessId());
        fclose(f);
    } else if (strcmp(mode, "pathlock") == 0) {
        HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE,
                               FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                               OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
        if (h == INVALID_HANDLE_VALUE)
            return fail("CreateFile", path);
        OVERLAPPED at = {0};
        if (!LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, MAXDWORD,
                        MAXDWORD, &at))
            return fail("LockFileEx", path);
    } else {
        fprintf(stderr, "holder: unknown mode %s\n", mode);
        return 2;
    }
    printf("ready %lu\n", GetCurrentProcessId());
    fflush(stdout);
    while (getchar() != EOF) {
    }
    return 0;
}

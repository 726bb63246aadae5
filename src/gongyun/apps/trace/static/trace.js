window.Gongyun.pages['app:trace/main'] = async () => {};

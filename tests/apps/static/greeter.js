/* greeter page */ window.Gongyun.pages["app:greeter/main"] = async () => {};
